-- The fee of the rule that routed an application, kept with it like its time limit
-- (sla_minutes), so receipts and details show what the applicant owes without rereading the
-- routing table version.
ALTER TABLE licence_applications ADD COLUMN fee_vnd bigint CHECK (fee_vnd >= 0);

-- Applications already stored: their rule is in the routing version they record (versions are
-- append-only). Form D applications are routed by a fixed rule outside the table, free of
-- charge (api::certificates).
UPDATE licence_applications a
   SET fee_vnd = coalesce(
       (SELECT (r ->> 'fee_vnd')::bigint
          FROM routing_versions v, jsonb_array_elements(v.tables -> 'rules') r
         WHERE v.version = a.routing_version AND r ->> 'id' = a.rule_id),
       CASE WHEN a.application_type = 'COO' THEN 0 END);

ALTER TABLE licence_applications ALTER COLUMN fee_vnd SET NOT NULL;
