"""Package metadata for recsynth: builds the wheel that clusters install."""
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildWithConf(build_py):
    """Ship conf/**/*.yaml inside the wheel, so a cluster install has its defaults and overlays."""

    def run(self):
        super().run()
        source = Path(__file__).parent / "conf"
        target = Path(self.build_lib) / "recsynth" / "conf"
        for yaml_file in source.rglob("*.yaml"):
            (target / yaml_file.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(yaml_file), str(target / yaml_file.relative_to(source)))


setup(
    name="recsynth",
    version="0.1.0",
    description="Batch jobs for e-commerce search & recommendation teams: "
    "clickstream + catalog ETL into Delta, synthetic behaviour data, recommendations.",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"recsynth": ["log4j2.properties"]},
    python_requires=">=3.10,<3.12",
    install_requires=[
        # Cluster images bring Spark (Databricks brings Delta too); these are what the
        # code needs on top. The tested pins of the whole stack live in requirements.txt.
        "pydantic>=2.6,<3",
        "PyYAML>=6",
        "click>=8.1",
        "rich>=13",
        # Imported by every job (model and checkpoint I/O); Databricks' standard runtime 15.4
        # LTS does not ship it (the ML runtime does).
        "fsspec>=2023",
    ],
    extras_require={
        "spark": ["pyspark==3.5.3", "delta-spark==3.3.2"],
        "train": ["tensorflow-cpu==2.15.1", "petastorm==0.13.1", "pyarrow==14.0.2", "fsspec>=2023",
                  "mlflow-skinny>=3.17,<4", "SQLAlchemy>=2", "alembic>=1.13", "matplotlib>=3.8"],
    },
    entry_points={"console_scripts": ["recsynth=recsynth.cli:main"]},
    cmdclass={"build_py": BuildWithConf},
)
