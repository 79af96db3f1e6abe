"""The wheel a cluster installs carries the code, the default conf and the log settings."""
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_contains_package_conf_and_entry_point(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("recsynth-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("recsynth/cli.py", "recsynth/etl/clean_events.py", "recsynth/conf/defaults.yaml",
                     "recsynth/conf/databricks.yaml",
                     "recsynth/conf/synth/online_retail_invoices.yaml", "recsynth/log4j2.properties"):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "recsynth = recsynth.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
