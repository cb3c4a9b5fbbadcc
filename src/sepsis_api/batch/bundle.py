"""A model version's files as bytes, shipped with a Spark or Dask job to workers that may not
see the driver's file system.

The bundle carries every file of the version directory exactly as stored (card.json included)
and the SHA-256 of the card as read on the driver. A worker writes the files once into a
directory of its machine's temporary space and then loads them through the same
hash-verifying loader as every other engine (``ModelVersion.open``): a file altered on the way
or on the worker's disk is refused there. No Python object is pickled, only bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sepsis_api.ml.scoring import open_model
from sepsis_api.ml.store import CARD, PACKAGED_ROOT, ArtifactError, ModelVersion, Registry

# Where workers unpack bundles: one directory per card digest, shared by the processes of a
# machine (the digest names the content, so a directory found there is reused).
CACHE_DIR_NAME = "sepsis-api-models"


@dataclass(frozen=True)
class ModelBundle:
    """The files of one model version (relative path -> bytes) and the model to score with."""

    version: str
    model: str
    card_sha256: str
    files: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, version: ModelVersion, model: str) -> ModelBundle:
        version.model_card(model)  # an unknown name fails here, on the driver
        files = tuple(
            (str(p.relative_to(version.path)), p.read_bytes())
            for p in sorted(version.path.rglob("*"))
            if p.is_file()
        )
        card = dict(files)[CARD]
        return cls(version.version, model, hashlib.sha256(card).hexdigest(), files)

    @property
    def size_bytes(self) -> int:
        return sum(len(b) for _, b in self.files)

    def unpack(self, root: Path | None = None) -> Path:
        """The version directory on this machine, written on first use; returns its path.

        Written to a private directory first and renamed into place, so processes unpacking
        the same bundle at once never see a half-written directory.
        """
        card = dict(self.files).get(CARD, b"")
        if hashlib.sha256(card).hexdigest() != self.card_sha256:
            raise ArtifactError(
                f"model bundle {self.version}: {CARD} does not match the digest taken when the "
                "job was built; refusing to load it"
            )
        base = (root or Path(tempfile.gettempdir())) / CACHE_DIR_NAME
        final = base / self.card_sha256[:32] / self.version
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=final.parent))
        try:
            for rel, data in self.files:
                target = staging / rel
                if not target.resolve().is_relative_to(staging.resolve()):
                    raise ArtifactError(f"model bundle {self.version}: unsafe path {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():  # not another process's copy: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final


def bundle_for(
    model: str | None = None,
    registry: Registry | None = None,
    default_version: str | None = None,
) -> ModelBundle:
    """The model ``model`` names (``open_model``'s rules: NAME, VERSION, VERSION/NAME; default
    the registry's default model), opened and verified here, as bytes for the workers."""
    registry = registry or Registry([PACKAGED_ROOT])
    served = open_model(model, registry, default_version)
    return ModelBundle.of(registry.open(served.version), served.name)
