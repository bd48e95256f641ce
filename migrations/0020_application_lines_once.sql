-- A licence application's goods lines are stored once, in `licence_application_lines`, and no
-- longer a second time inside `licence_applications.details` (issue 14: a 999-line application
-- copied its lines into a JSON parameter and the connection's buffers whole). The details are
-- read back with their lines (`store::licensing::DETAILS`); applications stored before keep
-- the lines they carry in `details`.
--
-- The lines' quantity becomes an unconstrained numeric so that it reads back as the window
-- read it ("12000", "1.5"), as the JSON did: numeric(18, 3) would give every quantity three
-- decimals. The rules bound the value (positive, below 10^15, at most 3 decimals).
ALTER TABLE licence_application_lines ALTER COLUMN quantity TYPE numeric;
