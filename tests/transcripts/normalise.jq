# normalise.jq: what t0120-transcripts does to a JSON reply before the diff (after jq -S
# sorts the keys): values that differ from run to run become placeholders.
#   <time>     numbers under a key ending in "_at", "time", "last_seen", "last_heartbeat",
#              "estimated_unblock" or "since" (milliseconds)
#   <hash>     hash, prev_hash, root_hash, signature, trace_id
#   <token>    any string that is a token: s2a_ (admin), s2s_ (swarm), s2l_ (lease)
#   <version>  the server's version string
walk(
  if type == "object" then
    with_entries(
      if (.value | type) == "number"
         and ((.key | test("_at$")) or .key == "time" or .key == "last_seen" or .key == "last_heartbeat"
              or .key == "estimated_unblock" or .key == "since")
      then .value = "<time>"
      elif (.key | test("^(hash|prev_hash|root_hash|signature|trace_id)$")) and .value != null
      then .value = "<hash>"
      elif .key == "version" and (.value | type) == "string"
      then .value = "<version>"
      else . end)
  elif type == "string" and test("^s2[a-z]_[A-Za-z0-9_-]+$") then "<token>"
  else . end)
