"""The orchestrator's rooms: deterministic ids and journal codecs (ids), executing one action
(execute), checkpoints and the live view's numbers (state), and the run summary read back from
the journal (summary)."""
