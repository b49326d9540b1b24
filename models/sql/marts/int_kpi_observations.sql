-- What each KPI in the catalogue is computed from, per org unit and month: numerator and denominator
-- (so year-to-date values and forecasts can be derived), a direct value (medians), the plan, a given
-- forecast, and for disclosure control the counts the value rests on: n_basis (the people or cases
-- counted, or with the attribute for a share) and n_rest (for a share of counts: those without it).
-- forvaltning/enhet are NULL when the KPI's owner in the catalogue applies, or for the kommun level
-- of KPIs that roll up.
with economy as (
    select 'U90001' as kpi_id, forvaltning, enhet, month,
        {{ exact_sum('outcome_sek') }} as numerator, null::double as denominator, null::double as value,
        null::bigint as n_basis, null::bigint as n_rest, {{ exact_sum('budget_sek') }} as plan,
        {{ exact_sum('forecast_sek') }} as forecast_given
    from {{ ref('stg_ekonomi__utfall') }}
    group by grouping sets ((forvaltning, enhet, month), (forvaltning, month), (month))
),
economic_aid as (
    select 'N31807' as kpi_id, null as forvaltning, null as enhet, r.month,
        count(distinct a.person_pseudonym)::double as numerator, any_value(r.residents)::double as denominator,
        null::double as value,
        count(distinct a.person_pseudonym) as n_basis,
        any_value(r.residents) - count(distinct a.person_pseudonym) as n_rest,
        null::double as plan, null::double as forecast_given
    from {{ ref('int_residents_month') }} r
    left join {{ ref('stg_socialtjanst__ekonomiskt_bistand') }} a using (month)
    where r.residents > 0
    group by r.month
),
permits as (
    select 'U90010', null, null, date_trunc('month', decided_date)::date,
        sum(handling_days)::double, count(*)::double, median(handling_days)::double, count(*), null, null, null
    from {{ ref('stg_bygg_miljo__bygglov') }}
    group by all
),
within_promise as (
    -- The case flow's own decided and late cells (a case without a known received date is not known to
    -- be late), with a row for every förvaltning and month the case flow has, decisions or not: a row
    -- missing only where nothing was decided would tell a reader that count is 0.
    select 'U90020', forvaltning, null, month,
        sum(n_decided - n_decided_late)::double, sum(n_decided)::double, null,
        sum(n_decided - n_decided_late)::bigint, sum(n_decided_late)::bigint, null, null
    from {{ ref('fct_case_flow_month') }}
    group by grouping sets ((forvaltning, month), (month))
),
calls as (
    select 'U90030', null, null, month,
        count(*) filter (channel = 'telefon')::double, null, null, count(*) filter (channel = 'telefon'),
        null, null, null
    from {{ ref('stg_kontaktcenter__kontakter') }}
    group by month
),
solved as (
    select 'U90031', null, null, month,
        count(*) filter (solved_first_contact)::double, count(*)::double, null,
        count(*) filter (solved_first_contact), count(*) filter (not solved_first_contact), null, null
    from {{ ref('stg_kontaktcenter__kontakter') }}
    group by month
),
digital as (
    select 'U90040', null, null, month,
        count(*) filter (channel = 'digital')::double, count(*)::double, null,
        count(*) filter (channel = 'digital'), count(*) filter (channel <> 'digital'), null, null
    from {{ ref('stg_e_tjanster__inlamningar') }}
    group by month
),
home_care as (
    select 'U90050', null, null, month,
        {{ exact_sum('performed_hours') }}, {{ exact_sum('granted_hours') }}, null, count(distinct person_pseudonym), null, null, null
    from {{ ref('stg_vard_omsorg__hemtjanst') }}
    group by month
),
merit as (
    select 'U90060', null, null, month,
        {{ exact_sum('merit_value') }}, count(*)::double, null, count(*), null, null, null
    from {{ ref('stg_skola__meritvarde') }}
    group by month
),
feedback as (
    -- Direkt feedback per enhet, förvaltning and kommun: the mean rating and the share of low ones
    -- (1-2). n_basis counts the ratings (for the share: the low ones), so disclosure control withholds
    -- a mean or share resting on fewer ratings than the threshold.
    select 'U90080', forvaltning, enhet, month,
        sum(rating)::double, count(*)::double, null, count(*), null, null, null
    from {{ ref('stg_direkt_feedback__betyg') }}
    group by grouping sets ((forvaltning, enhet, month), (forvaltning, month), (month))
    union all
    select 'U90081', forvaltning, enhet, month,
        count(*) filter (rating <= 2)::double, count(*)::double, null,
        count(*) filter (rating <= 2), count(*) filter (rating > 2), null, null
    from {{ ref('stg_direkt_feedback__betyg') }}
    group by grouping sets ((forvaltning, enhet, month), (forvaltning, month), (month))
),
personnel_month as (
    -- Personal: per enhet, förvaltning and kommun and month. The share KPIs rest on the employees
    -- (n_basis = headcount), so publishing withholds an enhet with too few of them (and what would reveal it).
    select forvaltning, enhet, month,
        sum(headcount)::bigint as headcount, sum(leavers)::bigint as leavers,
        {{ exact_sum('scheduled_hours') }} as scheduled_hours, {{ exact_sum('sick_short_hours') }} as sick_short_hours,
        {{ exact_sum('sick_long_hours') }} as sick_long_hours, {{ exact_sum('worked_hours') }} as worked_hours,
        {{ exact_sum('overtime_hours') }} as overtime_hours, {{ exact_sum('hourly_paid_hours') }} as hourly_paid_hours,
        {{ exact_sum('cost_sek') }} as cost_sek, {{ exact_sum('cost_budget_sek') }} as cost_budget_sek
    from {{ ref('stg_personal__nyckeltal') }}
    group by grouping sets ((forvaltning, enhet, month), (forvaltning, month), (month))
),
personnel_turnover as (
    -- Personalomsättning, rolling 12 months: leavers in the 12 months up to the month over the average
    -- headcount in them, given only where all 12 months are delivered (and not held).
    select *,
        sum(leavers) over w as leavers_12m,
        avg(headcount) over w as headcount_12m,
        count(*) over w as months_12m
    from personnel_month
    window w as (partition by forvaltning, enhet order by month range between interval 11 month preceding
                 and current row)
),
personnel as (
    -- One row per HR KPI and org unit and month: what it is a share, sum or mean of.
    select k.kpi_id, t.forvaltning, t.enhet, t.month,
        case k.kpi_id when 'U90070' then t.headcount::double when 'U90071' then t.sick_short_hours
            when 'U90072' then t.sick_long_hours when 'U90073' then t.leavers_12m
            when 'U90074' then t.overtime_hours when 'U90075' then t.hourly_paid_hours else t.cost_sek end,
        case k.kpi_id when 'U90070' then 1.0 when 'U90071' then t.scheduled_hours
            when 'U90072' then t.scheduled_hours when 'U90073' then t.headcount_12m
            when 'U90076' then null else t.worked_hours end,
        null::double, t.headcount, null::bigint,
        case when k.kpi_id = 'U90076' then t.cost_budget_sek end, null::double
    from personnel_turnover t
    cross join (values ('U90070'), ('U90071'), ('U90072'), ('U90073'), ('U90074'), ('U90075'), ('U90076'))
        k(kpi_id)
    where k.kpi_id <> 'U90073' or t.months_12m = 12
)
select * from economy
union all select * from economic_aid
union all select * from permits
union all select * from within_promise
union all select * from calls
union all select * from solved
union all select * from digital
union all select * from home_care
union all select * from merit
union all select * from feedback
union all select * from personnel
