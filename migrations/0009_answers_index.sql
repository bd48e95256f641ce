-- A partner's business responses are found from the message they answer (the admin view of an
-- outbox message lists them): looked up by sender and the reference they answer.
CREATE INDEX inbound_messages_answers ON inbound_messages (sender, previous_reference)
    WHERE previous_reference IS NOT NULL;
