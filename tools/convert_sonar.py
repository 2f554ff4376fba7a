"""Write dleff/data/sonar.csv from the `Sonar.rda` that Debian's r-cran-mlbench ships.

Run once, from the repository root, on a Debian/Ubuntu machine:

    .venv/bin/python tools/convert_sonar.py                # fetches the .deb with apt-get download
    .venv/bin/python tools/convert_sonar.py --rda PATH     # or reads a Sonar.rda you already have

The .deb is only unpacked into a temporary folder (`dpkg -x`), nothing is
installed. Needs `pyreadr` (pip) to read the R data file.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "dleff" / "data" / "sonar.csv"
INSTALLED_RDA = Path("/usr/lib/R/site-library/mlbench/data/Sonar.rda")
RDA_IN_PACKAGE = Path("usr/lib/R/site-library/mlbench/data/Sonar.rda")


def fetch_rda(workdir: Path) -> Path:
    """Download r-cran-mlbench's .deb and unpack it (no install, no root needed)."""
    subprocess.run(["apt-get", "download", "r-cran-mlbench"], cwd=workdir, check=True)
    (deb,) = workdir.glob("r-cran-mlbench_*.deb")
    print(f"unpacking {deb.name}")
    subprocess.run(["dpkg", "-x", str(deb), str(workdir / "root")], check=True)
    return workdir / "root" / RDA_IN_PACKAGE


def convert(rda: Path, target: Path = TARGET) -> None:
    import pyreadr

    frame = pyreadr.read_r(str(rda))["Sonar"]
    if frame.shape != (208, 61) or list(frame["Class"].cat.categories) != ["M", "R"]:
        raise ValueError(f"{rda} is not mlbench's Sonar: shape {frame.shape}, "
                         f"columns {list(frame.columns)[:3]}...")
    # Shortest round-trip repr of each float64: the CSV holds exactly the values of the .rda.
    frame.to_csv(target, index=False, float_format=None, lineterminator="\n")
    counts = frame["Class"].value_counts().to_dict()
    print(f"wrote {target.relative_to(ROOT)}: {frame.shape[0]} rows, classes {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rda", type=Path, help="a Sonar.rda to read instead of fetching the .deb")
    args = parser.parse_args()
    if args.rda:
        convert(args.rda)
    elif INSTALLED_RDA.is_file():
        convert(INSTALLED_RDA)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            convert(fetch_rda(Path(workdir)))


if __name__ == "__main__":
    main()
