{#
  A generic test: no two rows share the given columns (the model's grain). latest: for a model kept per
  partition and replaced a partition at a time, {partition, written} columns: only the partitions that
  hold rows of the latest write are read (every other one was tested when it was written, and is as it
  was), so a month's run does not read five years of rows again.
#}
{% test unique_combination(model, columns, latest=none) %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
{%- if latest %}
where {{ latest.partition }} in (
    select {{ latest.partition }} from {{ model }}
    where {{ latest.written }} = (select max({{ latest.written }}) from {{ model }})
)
{%- endif %}
group by all
having count(*) > 1
{% endtest %}
