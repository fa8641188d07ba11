"""Build plugins: publish the project's image from hatch and setuptools builds."""
