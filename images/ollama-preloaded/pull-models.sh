#!/bin/sh
# Pulls $MODELS (space-separated Ollama tags) into $OLLAMA_MODELS at image build time.
# `ollama pull` asks a running server to pull, so this step starts one, pulls, stops it.
set -eu
: "${MODELS:?set the MODELS build argument: space-separated Ollama tags}"
ollama serve >/tmp/ollama-serve.log 2>&1 &
server=$!
waited=0
until ollama list >/dev/null 2>&1; do
  waited=$((waited + 1))
  if [ "$waited" -gt 60 ]; then
    cat /tmp/ollama-serve.log >&2
    exit 1
  fi
  sleep 1
done
for model in $MODELS; do
  echo "pulling $model" >&2
  ollama pull "$model"
done
ollama list
kill "$server"
wait "$server" || true
