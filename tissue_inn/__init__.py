"""tissue_inn: posterior estimation of tissue parameters from multispectral reflectance with invertible neural networks."""

__version__ = "0.1.0"
__all__ = ["__version__"]
