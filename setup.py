from pathlib import Path

from setuptools import find_packages, setup

version = {}
for line in Path("vae_tf/__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

setup(
    name="vae_tf",
    version=version["__version__"],
    description="Variational autoencoders in Keras 3: generate and compress images.",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vae_tf", "vae_tf.*"]),
    package_data={"vae_tf": ["assets/*.npz", "assets/*.md", "assets/*.html"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        # tensorflow-datasets imports it but its install does not bring it.
        "importlib_resources",
        "matplotlib",
        "numpy",
        "pillow",
        # Entropy coding (ANS) for the codecs in vae_tf.compression.
        "constriction>=0.4",
        # The LiteRT interpreter that runs the TFLite exports (vae_tf.tflite).
        "ai-edge-litert",
    ],
    extras_require={
        # vae-tf train --tensorboard and vae_tf.callbacks.ImageLogger write
        # with tf.summary, which needs it.
        "tensorboard": ["tensorboard"],
        # The suite runs in two workers (pytest-xdist): README, Development.
        "test": ["pytest>=7", "pytest-xdist>=3", "tensorboard", "playwright"],
    },
    entry_points={"console_scripts": ["vae-tf=vae_tf.cli:main"]},
)
