"""The web UI: a Streamlit multipage app that talks to the API over HTTP only.

It never imports the model code (scikit-learn, ``sepsis_api.ml``) or the API modules; from the
package it uses only ``sepsis_api.config`` (its address and key) and ``sepsis_api.schema``.
Start it with ``sepsis-api ui`` (see ``sepsis_api.ui.launch``).
"""
