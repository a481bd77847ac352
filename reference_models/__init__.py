"""Small trained weights shipped with npxai (installed as ``npxai.reference_models``)."""
