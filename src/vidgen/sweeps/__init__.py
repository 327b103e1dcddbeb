"""Paper tables as W&B sweeps: schema check, grid/random expansion, a local runner (no server).

    sweeps/<paper>/<table>_<slug>.yaml   a plain W&B sweep file (program, method, parameters, command)
    vidgen.sweeps.tables                 its link to the paper's table (row parameter, metric keys)
    vidgen sweep validate SWEEP...       schema, table link, variants/experiments exist, runs compose
    vidgen sweep run SWEEP --local       run the rows here, as `wandb agent` would (docs/sweeps.md)
"""

from vidgen.sweeps.schema import RunSpec, Sweep, expand, load_sweep, schema_errors
from vidgen.sweeps.tables import TABLES, Metric, TableSpec, table_spec

__all__ = [
    "TABLES", "Metric", "RunSpec", "Sweep", "TableSpec", "expand", "load_sweep", "schema_errors", "table_spec",
]
