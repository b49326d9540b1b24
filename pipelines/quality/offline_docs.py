"""Data Docs that render with the network off: GX's CDN assets, vendored and linked locally.

GX's Data Docs load Bootstrap, jQuery, bootstrap-table, Vega and Font Awesome from public CDNs
and a logo from S3. On a municipal network without internet the pages show an empty table, and
where the internet is open every page view tells third-country CDNs that a steward is reading.
So the assets are taken from the npm registry once, at install time (``bin/setup`` runs
``python -m pipelines.quality.offline_docs``; each tarball pinned by its SHA-512 integrity,
its licence and package.json kept beside it), and after each build every page of a site is rewritten to load them
from ``vendor/`` beside the units' sites. Logos from GX's bucket are dropped. A URL this
module does not know stays a reference to the internet, which ``external_assets`` reports and a
test fails on, so a GX upgrade that adds an asset is noticed.

Standard library only: it runs before anything but the interpreter is installed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import shutil
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
STORE = Path(sys.prefix) / "share" / "knutpunkt" / "docs-assets"  # beside the environment that uses it
VENDOR = "vendor"  # beside the units' Data Docs sites, shared by them


@dataclass(frozen=True)
class Package:
    name: str  # npm name, scoped or not
    version: str
    integrity: str  # the registry's dist.integrity (SHA-512, base64)
    files: tuple[str, ...]  # paths inside the package (a trailing / copies a folder)

    @property
    def folder(self) -> str:
        return f"{self.name.split('/')[-1]}-{self.version}"

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"


PACKAGES = {
    p.name: p
    for p in (
        Package("jquery", "3.7.1", "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==", ("dist/jquery.min.js",)),
        Package("popper.js", "1.12.9", "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==", ("dist/umd/popper.min.js",)),
        Package("bootstrap", "4.3.1", "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==", ("dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js")),
        Package("@forevolve/bootstrap-dark", "1.1.0", "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==", ("dist/css/bootstrap-prefers-dark.css",)),
        Package("bootstrap-table", "1.19.1", "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==", ("dist/bootstrap-table.min.css", "dist/bootstrap-table.min.js", "dist/extensions/filter-control/")),
        Package("bootstrap-datepicker", "1.9.0", "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==", ("dist/css/bootstrap-datepicker.min.css", "dist/js/bootstrap-datepicker.min.js")),
        Package("@fortawesome/fontawesome-free", "6.6.0", "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==", ("css/all.min.css", "webfonts/")),
        Package("vega", "5.33.1", "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==", ("build/vega.min.js",)),
        Package("vega-lite", "5.23.0", "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==", ("build/vega-lite.min.js",)),
        Package("vega-embed", "6.29.0", "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==", ("build/vega-embed.min.js",)),
    )
}  # fmt: skip

# Each URL GX's templates load, and the package file that replaces it. The CDN's "@5" is the latest 5.x:
# pinned here. bootstrap-table's filter-control extension is linked at 1.19.0: 1.19.1's is used.
LOCAL = {
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": ("popper.js", "dist/umd/popper.min.js"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": ("bootstrap", "dist/css/bootstrap.min.css"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": ("bootstrap", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": ("@forevolve/bootstrap-dark", "dist/css/bootstrap-prefers-dark.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": ("bootstrap-table", "dist/bootstrap-table.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": ("bootstrap-table", "dist/bootstrap-table.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": ("bootstrap-table", "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": ("bootstrap-table", "dist/extensions/filter-control/bootstrap-table-filter-control.css"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": ("bootstrap-table", "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": ("bootstrap-datepicker", "dist/css/bootstrap-datepicker.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": ("bootstrap-datepicker", "dist/js/bootstrap-datepicker.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": ("@fortawesome/fontawesome-free", "css/all.min.css"),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega", "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite", "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed", "build/vega-embed.min.js"),
}  # fmt: skip
LOGO = re.compile(r'<img[^>]*src="https://great-expectations-web-assets\.[^"]*"[^>]*>')
REMOTE_CSS = re.compile(r"url\(\s*['\"]?(https?://[^)'\"]+)['\"]?\s*\)")  # a background logo in GX's styles
# What a page loads by itself (not a link a reader may follow): src on any element, href on <link>.
LOADED = re.compile(r'(?:\bsrc=|<link\b[^>]*\bhref=)"(https?://[^"]+)"')


def fetch(store: Path = STORE) -> None:
    """Download each package once, check its integrity, keep the files the pages use and its licence."""
    for package in PACKAGES.values():
        target = store / package.folder
        if (target / ".complete").exists():
            continue
        with urllib.request.urlopen(package.tarball, timeout=120) as response:
            data = response.read()
        digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if digest != package.integrity:
            raise RuntimeError(f"{package.tarball}: integrity {digest} is not the pinned {package.integrity}")
        _extract(data, package, target)


def _extract(data: bytes, package: Package, target: Path) -> None:
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            path = member.name.removeprefix("package/")
            wanted = (
                path.upper().startswith("LICENSE")
                or path == "package.json"
                or any(path == f or (f.endswith("/") and path.startswith(f)) for f in package.files)
            )
            if member.isfile() and wanted:
                out = staging / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
    (staging / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def localise(site: Path, store: Path = STORE) -> list[str]:
    """Point every page of the site at the vendored assets (copied once beside the units' sites, not
    per site and build); drop GX's remote logos.

    Returns the packages that are not installed (bin/setup installs them): their pages still load
    nothing from the internet, they only lack that style or script.
    """
    vendor = site.parent / VENDOR
    missing = []
    for package in PACKAGES.values():
        if (vendor / package.folder).is_dir():
            continue
        if not (store / package.folder / ".complete").exists():
            missing.append(f"{package.name}@{package.version}")
            continue
        staging = vendor / f".{package.folder}.{os.getpid()}.partial"
        shutil.copytree(store / package.folder, staging, ignore=shutil.ignore_patterns(".complete"))
        with contextlib.suppress(OSError):  # another unit's build placed it first
            os.replace(staging, vendor / package.folder)
        shutil.rmtree(staging, ignore_errors=True)
    for page in site.rglob("*.html"):
        up = os.path.relpath(vendor, page.parent)
        text = LOGO.sub("", page.read_text(encoding="utf-8"))
        for url, (name, path) in LOCAL.items():
            text = text.replace(f'"{url}"', f'"{up}/{PACKAGES[name].folder}/{path}"')
        page.write_text(REMOTE_CSS.sub("none", text), encoding="utf-8")
    for sheet in (site / "static" / "styles").glob("*.css"):
        sheet.write_text(REMOTE_CSS.sub("none", sheet.read_text(encoding="utf-8")), encoding="utf-8")
    return missing


def external_assets(site: Path) -> dict[str, set[str]]:
    """What each page of the site would still load from the internet (nothing, once localised)."""
    found = {}
    for path in [*site.rglob("*.html"), *(site / "static" / "styles").glob("*.css")]:
        text = path.read_text(encoding="utf-8")
        found[str(path.relative_to(site))] = set(LOADED.findall(text)) | set(REMOTE_CSS.findall(text))
    return {page: urls for page, urls in found.items() if urls}


if __name__ == "__main__":
    fetch()
