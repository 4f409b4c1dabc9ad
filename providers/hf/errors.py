"""Errors of Hugging Face conversion: each names the file or tensor and what was expected."""

from plugtron.errors import PlugtronError


class ConversionError(PlugtronError):
    """A Hugging Face checkpoint (or a Megatron checkpoint to export) cannot be converted."""


class UnsupportedArchitecture(ConversionError):
    """The config names an architecture or option plugtron cannot reproduce exactly."""


def require_safetensors():
    """``safetensors`` is a dependency of plugtron; a broken environment gets a clear message."""
    try:
        import safetensors.torch  # noqa: F401
    except ImportError as exc:  # pragma: no cover - only in a damaged install
        raise ConversionError(f"Hugging Face conversion needs the 'safetensors' package ({exc}); "
                              "pip install 'safetensors>=0.4,<1'") from None
