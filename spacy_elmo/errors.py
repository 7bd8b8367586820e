"""Errors that name the file, dataset or option at fault, so users never see a torch or h5py trace."""
import errno

DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
"""The errnos of a write that found no room: a full disk, a file size limit, a quota."""


class ElmoError(ValueError):
    """Base class of every error spacy-elmo raises on bad input."""


class OptionsError(ElmoError):
    """An options.json that is missing a key, has a wrong type, or asks for something unsupported."""


class WeightsError(ElmoError):
    """A weight file that is missing, unreadable, or inconsistent with its options."""


class InputError(ElmoError):
    """Text or token input that cannot be embedded."""


class OutputError(ElmoError):
    """An output that cannot be written safely: it exists, it is an input, or its directory is not writable."""


class UnknownModelError(ElmoError):
    """A model name that is not in the catalogue of published models."""


class DownloadError(ElmoError):
    """A published model that could not be fetched into the cache, or whose download failed its checks."""
