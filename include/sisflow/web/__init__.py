"""The operations pages served inside Airflow's api-server (see ``plugins/sisflow_fleet.py``):
rendered here from :mod:`sisflow.fleet`, so the plugin file only mounts them."""
