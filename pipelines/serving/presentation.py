"""Views in the serving snapshot that the dashboards read: presentation over the published tables.

Each is what a Superset dataset needs beyond a published table (values as Swedish text with their unit,
months summed into tertials, a line saying a förvaltning has no initiatives). They were Superset virtual
datasets; as views the SQL is planned by DuckDB alone, and Superset treats them as tables. For a virtual
dataset Superset parses its SQL on every chart view, cached or not (row-level-security predicates for the
cache key, the default schema, template calls): a repeat view cost half again as much as one on a table.

A view holds no data of its own: it reads tables that passed disclosure control, row for row or summed
only where every month is shown (``case_flow_tertial``), so it publishes nothing a reader could not
compute from the snapshot. A manager's row-level security applies to a view as to a table: on its
``forvaltning`` column, after the view is computed. So no view ranks or compares rows across
förvaltningar; the forecast chart's "five largest deviations", which must rank within what the reader
may see, stays a Superset dataset over ``kpi_chef`` (``prognos_chef``), where Superset applies the
reader's filter inside it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    name: str
    description: str  # Swedish: shown to whoever opens the snapshot
    sql: str


VIEWS = (
    View(
        "kpi_chef",
        "Nyckeltal för chefer: som kpi_value, med organisation (kommun, förvaltning eller enhet), trafikljus som tal, den senaste månaden med status per nyckeltal och enhet, värdena som text med sin enhet (mnkr, tkr, %, dagar, st).",
        """
WITH k AS (
    SELECT v.*, c.unit_of_measure,
        CASE WHEN v.forvaltning = 'Totalt' THEN 'Kommunen' WHEN v.enhet = 'Totalt' THEN v.forvaltning
            ELSE v.enhet END AS organisation,
        CASE v.status WHEN 'grön' THEN 3 WHEN 'gul' THEN 2 WHEN 'röd' THEN 1 END AS status_poang,
        v.month = max(v.month) FILTER (WHERE v.status IS NOT NULL)
            OVER (PARTITION BY v.kpi_id, v.forvaltning, v.enhet) AS is_latest
    FROM kpi_value v JOIN kpi c USING (kpi_id)
), texts AS (
    -- each value as a Swedish reader expects it, with its unit: 12,3 mnkr, 850 tkr, 4,5 %, 14,0 dagar;
    -- a missing value is a dash (Superset's table would print N/A)
    SELECT *, list_transform([actual, target, forecast, deviation], lambda x: CASE
        WHEN x IS NULL THEN '–'
        WHEN unit_of_measure = 'kronor' AND abs(x) >= 1e6
            THEN translate(format('{:,.1f}', x / 1e6), ',.', ' ,') || ' mnkr'
        WHEN unit_of_measure = 'kronor' THEN translate(format('{:,.0f}', x / 1e3), ',.', ' ,') || ' tkr'
        WHEN unit_of_measure = 'procent' THEN translate(format('{:,.1f}', x), ',.', ' ,') || ' %'
        WHEN unit_of_measure = 'antal' THEN translate(format('{:,.0f}', x), ',.', ' ,') || ' st'
        ELSE translate(format('{:,.1f}', x), ',.', ' ,') || ' ' || unit_of_measure END) AS t
    FROM k
)
SELECT * EXCLUDE (t), t[1] AS utfall, t[2] AS mal, t[3] AS prognos, t[4] AS avvikelse
FROM texts
""",
    ),
    View(
        "case_flow_tertial",
        "Ärendeflöde per förvaltning, ärendetyp och tertial. En summa visas bara när varje månad i tertialen visas (en undertryckt månad ger ingen summa, inte en för låg); balansen är tertialens sista månads.",
        """
SELECT f.forvaltning, f.case_type, m.year, m.tertial, m.tertial_label,
    CASE WHEN count(f.n_received) = count(*) THEN sum(f.n_received) END AS n_received,
    CASE WHEN count(f.n_decided) = count(*) THEN sum(f.n_decided) END AS n_decided,
    CASE WHEN count(f.n_closed) = count(*) THEN sum(f.n_closed) END AS n_closed,
    CASE WHEN count(f.n_decided_late) = count(*) THEN sum(f.n_decided_late) END AS n_decided_late,
    arg_max(f.n_backlog, f.month) AS n_backlog,
    arg_max(f.n_backlog_past_promise, f.month) AS n_backlog_past_promise
FROM case_flow f JOIN month m USING (month)
GROUP BY f.forvaltning, f.case_type, m.year, m.tertial, m.tertial_label
""",
    ),
    View(
        "fynd_chef",
        "Dataupptäcktens avvikelser för chefer i klartext: vad analysen hittat, hur stort och hur säkert det är, utan statistiska mått; en förvaltning utan fynd får en rad som säger det. Detaljerna finns i discovery_findings.",
        """
WITH fynd AS (
    SELECT forvaltning, coalesce(org_unit, forvaltning) AS organisation, title AS vad,
        CASE kind
            WHEN 'kpi_deviation' THEN 'i snitt ' || translate(format('{:.1f}', abs(effect)), '.', ',') || ' % '
                || CASE WHEN effect > 0 THEN 'över' ELSE 'under' END || ' målet'
            WHEN 'kpi_trend' THEN CASE WHEN effect > 0 THEN '+' ELSE '−' END
                || translate(format('{:.1f}', abs(effect)), '.', ',') || ' '
                || regexp_extract(measure, '\\(([^)]*)\\)', 1) || ' per år'
            WHEN 'case_flow' THEN translate(format('{:.1f}', effect), '.', ',')
                || ' gånger så lång tid till beslut (' || detail || ')'
            ELSE translate(format('{:.1f}', effect), '.', ',') || ' (' || measure || ')'
        END AS hur_stort,
        -- the q-value (false discovery rate) in words; the number itself stays on Dataupptäckt
        CASE WHEN q_value IS NULL THEN 'inte prövat mot slumpen'
            WHEN q_value < 0.001 THEN 'mycket säkert: nästan uteslutet att det är slumpen'
            WHEN q_value < 0.01 THEN 'säkert: osannolikt att det är slumpen'
            ELSE 'osäkert' END AS hur_sakert
    FROM discovery_findings
    WHERE kind IN ('kpi_deviation', 'kpi_trend', 'case_flow') AND forvaltning <> 'Totalt'
)
SELECT * FROM fynd
UNION ALL BY NAME
SELECT forvaltning, forvaltning AS organisation,
    'Analysen har inte hittat någon avvikelse i ' || forvaltning AS vad
FROM org_unit
WHERE level = 'förvaltning' AND forvaltning NOT IN (SELECT forvaltning FROM fynd)
""",
    ),
    View(
        "nytta_chef",
        "Nyttorealisering per initiativ och år: nuläge, mål, utfall, ägare och slutdatum. Ett år visas bara om varje månad av nyckeltalet visas. En förvaltning utan initiativ får en rad som säger det.",
        """
-- the year as text too: a chart's series named 2024, not 2024.0 (an integer column with a NULL is a float)
SELECT *, year::VARCHAR AS ar FROM benefit_realisation
UNION ALL BY NAME
-- a förvaltning without initiatives gets a line that says so, not an empty panel
SELECT forvaltning, 'Inga initiativ för ' || forvaltning AS title
FROM org_unit
WHERE level = 'förvaltning'
    AND forvaltning NOT IN (SELECT forvaltning FROM benefit_realisation WHERE forvaltning IS NOT NULL)
""",
    ),
    View(
        "provade_samband",
        "Dataupptäckt: varje prövat samband (par av insatser, samma kvartal eller med fördröjning, och meritvärde i årskurs 9) och vad prövningen gav, rapporterade fynd först; statusslag grupperar statusarna: rapporterat, ingår i ett annat fynd, samband under marginalen, testat utan samband, för lite data, delas inte. Minsta upptäckbara effekt är i parets mått (oddskvot eller meritpoäng). Inga gruppstorlekar.",
        """
-- what every tested association came to (discovery_tested), reported findings first; `statusslag` groups
-- the statuses' wordings (odds ratio or merit points, the threshold) into their kinds, in the order a reader
-- wants them, and keeps a wording it does not know as it is
WITH provade AS (
    SELECT *,
        CASE
            WHEN status = 'rapporterat' THEN 'rapporterat'
            WHEN status = 'ingår i ett annat fynd' OR status LIKE 'samband, men fyndet%' THEN 'ingår i ett annat fynd'
            WHEN status LIKE 'samband, men inte säkert över%' THEN 'samband under marginalen'
            WHEN status LIKE 'testat, inget samband%' THEN 'testat, inget samband'
            WHEN status LIKE 'för lite data%' THEN 'för lite data'
            ELSE status
        END AS statusslag
    FROM discovery_tested
)
SELECT finding_id, dataset_a, dataset_b, measure, lag_quarters,
    CASE WHEN lag_quarters = 0 THEN 'samma kvartal' ELSE CAST(lag_quarters AS VARCHAR) END AS fordrojning,
    status, statusslag,
    coalesce(list_position(['rapporterat', 'ingår i ett annat fynd', 'samband under marginalen',
        'testat, inget samband', 'för lite data', 'delas inte'], statusslag), 99) AS ordning,
    min_detectable, data_version
FROM provade
""",
    ),
)
