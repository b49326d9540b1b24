"""The delivery sensor, evaluated against a real Dagster instance."""

import os

import dagster as dg

from pipelines.defs.resources import Platform
from pipelines.defs.units import deliveries, new_deliveries
from tests.conftest import SOCIAL, write_csv

ROW = [["811218-9876", "2024-01", "10", "Ensamstående"]]


def _evaluate(instance, cursor=None) -> dg.SensorResult:
    return new_deliveries(
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"platform": Platform()})
    )


def test_new_delivery_becomes_a_partition_and_a_run(home):
    write_csv(home, SOCIAL, "2024-01", "ekonomiskt_bistand", ROW)
    write_csv(home, SOCIAL, "2024-02", "ekonomiskt_bistand", ROW)
    with dg.instance_for_test() as instance:
        first = _evaluate(instance)
        assert [r.partition_key for r in first.run_requests] == ["2024-01", "2024-02"]
        assert {tuple(r.asset_selection) for r in first.run_requests} == {
            (dg.AssetKey(["units", "socialtjanst"]),)
        }
        [request] = first.dynamic_partitions_requests
        assert request.partitions_def_name == deliveries("socialtjanst").name
        assert list(request.partition_keys) == ["2024-01", "2024-02"]

        assert _evaluate(instance, first.cursor).run_requests == []

        path = write_csv(home, SOCIAL, "2024-02", "ekonomiskt_bistand", ROW * 2)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
        resent = _evaluate(instance, first.cursor)
        assert [r.partition_key for r in resent.run_requests] == ["2024-02"]
        assert resent.run_requests[0].run_key != first.run_requests[1].run_key
