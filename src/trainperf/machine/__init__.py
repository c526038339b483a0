"""The machine a run happens on: what it has (``environment``: devices, torch features, backend flags), checks
before a run (``preflight``), its baseline key (``key``: which baseline file is this machine's), how busy other
processes kept it while a case ran (``load``) and a single-threaded speed probe (``speed``), so a verdict can tell a
slower program from a slower machine.
"""
