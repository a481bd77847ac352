"""npxai's exceptions. Each message names the layer, key, argument or file that was wrong."""


class BackendError(ValueError):
    """An unknown backend, or one that cannot run here."""


class LayerInputError(ValueError):
    """An array reached a layer with a shape the layer cannot take."""


class StateDictError(ValueError):
    """A state dict does not fit the model: missing or unexpected keys, wrong shapes, or NaN or
    Inf values (refused unless ``allow_nonfinite=True``)."""


class LoadError(ValueError):
    """A weight file could not be read: corrupt, truncated, or of an unknown format."""


class MissingFileError(LoadError, FileNotFoundError):
    """A file to read is not there. Also a ``FileNotFoundError``, so ``except FileNotFoundError``
    catches it as well as ``except LoadError``."""


class UnsafePickleError(LoadError):
    """A pickle names a global outside npxai's allow-list; nothing from it was executed."""


class ConversionError(TypeError):
    """A torch module has no npxai counterpart."""


class LRPCompatibilityError(ValueError):
    """A composite gives a layer a rule that cannot run on it, or no rule at all (a layer LRP
    does not take). ``key``, ``layer_type`` and ``rule`` (``None``: no rule) say where; ``takes``
    lists the names of the rules the layer takes."""

    def __init__(self, message: str, key: str, layer_type: str, rule: object, takes: list[str]):
        super().__init__(message)
        self.key, self.layer_type, self.rule, self.takes = key, layer_type, rule, takes


class UnsupportedLayerError(ValueError):
    """A model holds a layer that an analyzer has no rule for; ``key`` and ``layer_type`` say
    which."""

    def __init__(self, message: str, key: str, layer_type: str):
        super().__init__(message)
        self.key, self.layer_type = key, layer_type


class UnknownModelError(ValueError):
    """A model or architecture name that the zoo does not know, or bad constructor arguments."""


class MissingExtraError(ImportError):
    """The pretrained weights need an optional extra that is not installed."""


class UsageError(ValueError):
    """A command line that names something unknown; reported with the usage, exit status 2."""


class NotFittedError(RuntimeError):
    """An analyzer that learns from data (PatternNet's patterns) was used before ``fit`` or
    ``load``."""


class PatternFileError(LoadError):
    """A pattern file that cannot be read or does not fit: another estimator, missing or
    unexpected layer keys, or a pattern whose shape is not its layer's weight's."""


class TooManyFeaturesError(ValueError):
    """Exact Shapley values asked of more features than their ``2^M`` coalitions allow."""
