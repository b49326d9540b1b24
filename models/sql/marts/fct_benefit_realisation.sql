-- Benefit realisation (nyttorealisering) per initiative and year: baseline (nuläge, the first year
-- measured), target (nyläge), actual, owner and due date. A target given as a reference pair (Norrtälje:
-- 1.6 million -> 800,000 calls a year) is scaled to this municipality: baseline * reference_target /
-- reference_baseline. Sums over part of a year are annualised.
with kpi_rows as (
    select o.kpi_id, year(o.month) as year, o.month, o.numerator, o.denominator, o.n_basis, o.n_rest
    from {{ ref('int_kpi_observations') }} o
    join {{ ref('kpi_catalogue') }} c using (kpi_id)
    where c.forvaltning is not null or (o.forvaltning is null and o.enhet is null)
),
yearly as (
    select k.kpi_id, k.year, count(distinct k.month) as months_observed,
        case c.aggregation
            when 'summa' then {{ exact_sum('k.numerator') }} * 12.0 / count(distinct k.month)
            when 'andel' then 100.0 * {{ exact_sum('k.numerator') }} / nullif({{ exact_sum('k.denominator') }}, 0)
            when 'medel' then {{ exact_sum('k.numerator') }} / nullif({{ exact_sum('k.denominator') }}, 0)
        end as actual,
        sum(k.n_basis) as n_basis, sum(k.n_rest) as n_rest
    from kpi_rows k join {{ ref('kpi_catalogue') }} c using (kpi_id)
    where c.aggregation <> 'median'
    group by k.kpi_id, k.year, c.aggregation
    union all
    select 'U90010', year(decided_date), count(distinct date_trunc('month', decided_date)),
        median(handling_days), count(*), null
    from {{ ref('stg_bygg_miljo__bygglov') }}
    group by year(decided_date)
),
baseline as (
    select kpi_id, arg_min(year, year) as baseline_year, arg_min(actual, year) as baseline
    from yearly group by kpi_id
)
select
    i.initiative_id, i.title, i.benefit, i.benefit_type, i.kpi_id,
    c.title as kpi_title, c.unit_of_measure, c.higher_is_better,
    i.owner, i.forvaltning, i.due_date, i.follow_up, i.reference,
    b.baseline_year, b.baseline,
    coalesce(i.target_value, b.baseline * i.reference_target / i.reference_baseline) as target,
    y.year, y.months_observed, y.actual, y.n_basis, y.n_rest,
    100.0 * (y.actual - b.baseline)
        / nullif(coalesce(i.target_value, b.baseline * i.reference_target / i.reference_baseline) - b.baseline, 0)
        as progress_pct
from {{ ref('initiatives') }} i
join {{ ref('kpi_catalogue') }} c using (kpi_id)
left join baseline b using (kpi_id)
left join yearly y using (kpi_id)
