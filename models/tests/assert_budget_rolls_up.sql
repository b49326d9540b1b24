-- The kommun's outcome and budget equal the sum over its förvaltningar, month by month.
with f as (
    select month, sum(actual) as actual, sum(plan) as plan
    from {{ ref('fct_kpi') }} where kpi_id = 'U90001' and level = 'förvaltning' group by month
), k as (
    select month, actual, plan from {{ ref('fct_kpi') }} where kpi_id = 'U90001' and level = 'kommun'
)
select k.month from k join f using (month)
where abs(k.actual - f.actual) > 0.01 or abs(k.plan - f.plan) > 0.01
