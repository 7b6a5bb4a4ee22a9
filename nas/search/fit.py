"""What the data allow: proxy image counts checked against the data set a study searches.

``--proxy-subset`` (training images per candidate, taken outside the validation split) and
``--proxy-val`` (validation images scored per epoch) are counts; a data set may hold fewer.
What happens then depends on where the value came from (see :data:`nas.settings.FLAG` and
the other origins):

* given on the command line, in Python or in a study file: refused in one line that names
  the setting as it was given and what the data allow;
* a default: reduced to what the data hold, with one line saying so; the study records the
  reduced value;
* recorded by the study (or implied by its age): kept as it is. The data set and its folder
  are pinned, so these are the images the study's trials were trained on; an older version
  took the first images the data held, as the split still does, so old studies resume
  unchanged.

Pure: it reads the resolved settings and the number of training images, trains nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nas.data.splits import split_sizes
from nas.errors import NasError
from nas.search.settings import SearchSettings
from nas.settings import DEFAULT, FILE, FLAG, PYTHON, Resolved
from nas.units import plural


@dataclass(frozen=True)
class Fitted:
    """The settings after the check, and one line per default that was reduced."""

    resolved: Resolved
    notes: list[str]


def available_images(settings: SearchSettings, n_train: int) -> dict[str, tuple[int, str]]:
    """For ``proxy_subset`` and ``proxy_val``: how many images the data hold for it, and
    that said in words."""
    train, val = split_sizes(n_train, settings.val_fraction)
    return {
        "proxy_subset": (
            train,
            f"this data set has {plural(train, 'training image')} outside its validation split",
        ),
        "proxy_val": (val, f"the validation split of this data set holds {plural(val, 'image')}"),
    }


def fit_to_data(resolved: Resolved, n_train: int, study: str = "the study") -> Fitted:
    """Check ``--proxy-subset`` and ``--proxy-val`` against a data set of ``n_train``
    training images (see the module doc).

    Raises:
        NasError: in one line, for a given count the data cannot meet.
    """
    settings: SearchSettings = resolved.settings
    if n_train < 10:
        raise NasError(f"{n_train} training images are too few to search on")
    changes: dict[str, int] = {}
    notes: list[str] = []
    for name, (available, holds) in available_images(settings, n_train).items():
        value = getattr(settings, name)
        if value is None or value <= available:
            continue
        origin = resolved.origins.get(name, DEFAULT)
        flag = resolved.names.get(name, name)
        if origin in (FLAG, PYTHON):
            raise NasError(f"{flag} {value}: {holds}; give at most {available} or 'all'")
        if origin == FILE:
            raise NasError(
                f"{name} = {value} in the study file: {holds}; give at most {available} or 'all'"
            )
        if origin != DEFAULT:  # recorded, or legacy: what its trials trained on
            continue
        changes[name] = available
        notes.append(
            f"{flag}: the default {value:,} is more than the data hold ({holds}); using "
            f"{available:,}, and the study records it"
        )
    if not changes:
        return Fitted(resolved, [])
    reduced: SearchSettings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    fitted = dataclasses.replace(resolved, settings=reduced)
    return Fitted(fitted, notes)
