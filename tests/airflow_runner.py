"""Run one DAG with ``dag.test()`` in this process and print its task instances as JSON.

Used by tests/test_dags.py in a subprocess, so that each run gets the Airflow environment
(AIRFLOW_HOME, DAGS_FOLDER, ...) the test set up, and Airflow's global state never leaks into
the pytest process:  python tests/airflow_runner.py DAG_ID [CONF_JSON]
"""

import importlib
import json
import sys
from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"


def asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run_id))
        return [{"asset": e.asset.name, "extra": e.extra} for e in events]


def main() -> int:
    dag_id = sys.argv[1]
    conf = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    sys.path.insert(0, str(DAGS))
    dag = importlib.import_module(dag_id).DAG
    run = dag.test(run_conf=conf)
    tis = [
        {
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "state": str(ti.state),
            "try_number": ti.try_number,
            "label": getattr(ti, "rendered_map_index", None),
        }
        for ti in run.get_task_instances()
    ]
    print(
        "DAGRUN "
        + json.dumps(
            {
                "state": str(run.state),
                "run_id": run.run_id,
                "tis": tis,
                "asset_events": asset_events(run.run_id),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
