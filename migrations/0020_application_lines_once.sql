-- A licence application's goods lines are stored once, in `licence_application_lines`, and no
-- longer a second time inside `licence_applications.details` (issue 14: a 999-line application
-- copied its lines into a JSON parameter and the connection's buffers whole). The window reads
-- the details back with their lines joined (`store::licensing::DETAILS`, quantities as
-- `trim_scale(quantity)::text`, the text the window read them as); applications stored before
-- keep the lines they carry in `details` and read the same.
--
-- One way only: a build from before this change reads `details` alone and would find no lines
-- in the applications stored after it. Upgrade every instance together; to go back, first copy
-- the lines into the details:
--   UPDATE licence_applications a SET details = details || jsonb_build_object('lines',
--          (SELECT jsonb_agg(jsonb_build_object('number', l.line, 'hs_code', l.hs_code,
--                  'description', l.description, 'quantity', trim_scale(l.quantity)::text,
--                  'unit', l.unit) ORDER BY l.line)
--             FROM licence_application_lines l WHERE l.application_id = a.id))
--    WHERE NOT details ? 'lines';
COMMENT ON COLUMN licence_applications.details IS
    'The application as read (applicant, type, direction, countries, validity), without its goods '
    'lines, which are in licence_application_lines (applications stored before migration 0020 '
    'carry them here too).';
