#!/bin/sh
# One-shot job (service `temporal-create-namespace` in docker-compose.yml).
#
# Waits for the Temporal frontend, creates the namespace the worker and gateway use when it
# does not exist yet, and registers the custom search attributes the withdrawal workflow
# upserts (R33, R34: operators find stuck payouts with them in the Temporal UI). A workflow
# that upserts an unregistered attribute fails its workflow task over and over, so the
# worker and gateway only start after this job has succeeded.
#
# Idempotent: an existing namespace is kept, an attribute that already exists with the
# right type is skipped, and an attribute that exists with another type stops the job with
# an error instead of being silently reused.
#
# PostgreSQL visibility has a fixed number of slots per type (10 Keyword, 3 Bool, ...);
# the six attributes below use 5 Keyword + 1 Bool.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${NAMESPACE:-default}"
RETENTION="${NAMESPACE_RETENTION:-720h}"

# Resolve the host to IPv4 when possible: the CLI may otherwise try an IPv6 address the
# server does not listen on (the same workaround as Temporal's own compose scripts).
HOST="${ADDRESS%:*}"
PORT="${ADDRESS##*:}"
if command -v getent >/dev/null 2>&1; then
  IP="$(getent ahostsv4 "$HOST" 2>/dev/null | awk 'NR == 1 { print $1 }')"
  if [ -n "$IP" ]; then
    ADDRESS="${IP}:${PORT}"
  fi
fi
# The temporal CLI reads the frontend address from TEMPORAL_ADDRESS.
TEMPORAL_ADDRESS="$ADDRESS"
export TEMPORAL_ADDRESS

# retry ATTEMPTS DELAY_SECONDS COMMAND...
retry() {
  attempts="$1"
  delay="$2"
  shift 2
  n=1
  until "$@"; do
    if [ "$n" -ge "$attempts" ]; then
      echo "Giving up after ${n} attempts: $*" >&2
      return 1
    fi
    n=$((n + 1))
    sleep "$delay"
  done
}

echo "Waiting for the Temporal frontend at ${TEMPORAL_ADDRESS}..."
retry 60 2 temporal operator cluster health

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "Namespace '${NAMESPACE}' exists."
else
  echo "Creating namespace '${NAMESPACE}' (retention ${RETENTION})..."
  # A concurrent run may have created it meanwhile: accept "already exists".
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION" \
    --description "withdrawal-sentinel: one workflow per withdrawal" \
    || temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null
fi

# A new namespace becomes visible to every server role only after the namespace cache
# refreshes (about 10 s): wait until its search attributes can be listed.
retry 30 2 temporal operator search-attribute list --namespace "$NAMESPACE" >/dev/null

# Prints the registered type of search attribute $1 (e.g. INDEXED_VALUE_TYPE_KEYWORD), or
# nothing when it is not registered.
registered_type() {
  temporal operator search-attribute list --namespace "$NAMESPACE" --output json \
    | tr -d ' \t\r\n' \
    | grep -o "\"$1\":\"[A-Z_]*\"" \
    | head -n 1 \
    | cut -d '"' -f 4 \
    || true
}

# ensure_search_attribute NAME TYPE (TYPE as the CLI spells it: Keyword, Bool, ...)
ensure_search_attribute() {
  name="$1"
  type="$2"
  want="INDEXED_VALUE_TYPE_$(echo "$type" | tr '[:lower:]' '[:upper:]')"
  have="$(registered_type "$name")"
  if [ "$have" = "$want" ]; then
    echo "Search attribute ${name} (${type}) already registered."
    return 0
  fi
  if [ -n "$have" ]; then
    echo "Search attribute ${name} is registered as ${have}, expected ${want}." >&2
    return 1
  fi
  echo "Registering search attribute ${name} (${type})..."
  temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type "$type"
}

ensure_search_attribute WithdrawalStatus Keyword
ensure_search_attribute ExceptionCategory Keyword
ensure_search_attribute Channel Keyword
ensure_search_attribute BankCode Keyword
ensure_search_attribute Severity Keyword
ensure_search_attribute NeedsReview Bool

echo "Namespace '${NAMESPACE}' is ready with its search attributes."
