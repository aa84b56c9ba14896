"""sls-ray reproduce cirrus/pywren (run it, or redraw it with --plot-only); see sls_ray/cirrus/figures.py."""
from sls_ray.api import script_main

if __name__ == "__main__":
    script_main("cirrus/pywren")
