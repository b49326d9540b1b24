-- The KPI fact (Rodret): per KPI, org unit and month the actual value, the target (seed kpi_targets,
-- or the plan when the target is the budget), the plan, the year-end forecast, the deviation and a
-- traffic light. Thresholds are data (seeds), not chart settings, so every dashboard agrees.
-- Forecast: the given forecast (ekonomi's prognos) or the year-to-date value, for a sum extrapolated
-- to twelve months. Medians have no year-to-date forecast.
with obs as (
    select
        o.kpi_id,
        coalesce(c.forvaltning, o.forvaltning) as forvaltning,
        case when c.forvaltning is not null then c.enhet else o.enhet end as enhet,
        o.month, year(o.month) as year,
        o.numerator, o.denominator, o.value, o.n_basis, o.n_rest, o.plan, o.forecast_given,
        c.aggregation, c.higher_is_better
    from {{ ref('int_kpi_observations') }} o
    join {{ ref('kpi_catalogue') }} c using (kpi_id)
),
ytd as (
    select *,
        {{ exact_sum('numerator', 'w') }} as numerator_ytd,
        {{ exact_sum('denominator', 'w') }} as denominator_ytd,
        count(*) over w as months_ytd,
        {{ exact_sum('plan', '(partition by kpi_id, forvaltning, enhet, year)') }} as plan_year
    from obs
    window w as (partition by kpi_id, forvaltning, enhet, year order by month
                 rows between unbounded preceding and current row)
),
valued as (
    select *,
        case aggregation
            when 'summa' then numerator
            when 'andel' then 100.0 * numerator / nullif(denominator, 0)
            when 'medel' then numerator / nullif(denominator, 0)
            when 'median' then value
        end as actual,
        case aggregation
            when 'summa' then coalesce(forecast_given, numerator_ytd / months_ytd * 12)
            when 'andel' then 100.0 * numerator_ytd / nullif(denominator_ytd, 0)
            when 'medel' then numerator_ytd / nullif(denominator_ytd, 0)
        end as forecast
    from ytd
),
targeted as (
    select v.*,
        coalesce(t.target_value, v.plan) as target,
        t.yellow_margin, t.margin_unit
    from valued v
    left join {{ ref('kpi_targets') }} t
        on t.kpi_id = v.kpi_id and (t.year = v.year or t.year is null)
    qualify row_number() over (partition by v.kpi_id, v.forvaltning, v.enhet, v.month
                               order by t.year is null) = 1
),
margins as (
    select *,
        case margin_unit when 'procent' then abs(target) * yellow_margin / 100 else yellow_margin end as margin
    from targeted
)
select
    kpi_id,
    {{ org_unit_id('forvaltning', 'enhet') }} as org_unit_id,
    {{ org_level('forvaltning', 'enhet') }} as level,
    forvaltning,
    enhet,
    month,
    year,
    actual,
    target,
    plan,
    plan_year,
    forecast,
    actual - target as deviation,
    100.0 * (actual - target) / nullif(abs(target), 0) as deviation_pct,
    case when aggregation = 'summa' then forecast - coalesce(plan_year, target * 12) else forecast - target end
        as forecast_deviation,
    case
        when actual is null or target is null or margin is null then null
        when higher_is_better and actual >= target then 'grön'
        when higher_is_better and actual >= target - margin then 'gul'
        when higher_is_better then 'röd'
        when actual <= target then 'grön'
        when actual <= target + margin then 'gul'
        else 'röd'
    end as status,
    n_basis,
    n_rest,
    numerator,
    denominator
from margins
