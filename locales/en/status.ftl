# Names of dossier statuses: declarations (domain/declaration_state.rs) and licence
# applications, certificates of origin included (domain/application_state.rs).

status-accepted = Accepted
status-under-inspection = Under inspection
status-cleared = Cleared
status-rejected = Rejected
status-withdrawn = Withdrawn
status-submitted = Submitted
status-received = Received
status-supplement-requested = Supplement requested
status-supplemented = Supplemented
status-under-review = Under review
status-issued = Issued
status-refused = Refused
status-awaiting-payment = Awaiting payment
status-cancelled = Cancelled
