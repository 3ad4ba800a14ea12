#!/usr/bin/env bash
# Generates every prompt WAV from the words in dialplans/prompts/<lang>/index.toml
# with espeak-ng and sox (Debian: apt-get install espeak-ng sox).
#
# Output: 8 kHz, mono, 16-bit PCM WAV, leading/trailing silence trimmed, peak
# normalised to -3 dBFS; sentences get a short pause at the end, single words
# (num_*, u_*, say_*) none, so that spoken numbers run together naturally.
# Reproducible: fixed voices, speed, pitch and amplitude, no dither (-D) and
# a fixed random seed (-R): the same espeak-ng and sox versions give the same
# bytes.
#
# Usage: scripts/gen-prompts.sh [--missing] [DIR]
#   --missing  only generate files that do not exist (keeps studio recordings)
#   DIR        the prompts folder (default: dialplans/prompts)
set -euo pipefail

missing_only=0
if [[ "${1:-}" == "--missing" ]]; then
    missing_only=1
    shift
fi
dir="${1:-$(dirname "$0")/../dialplans/prompts}"

command -v espeak-ng >/dev/null || { echo "espeak-ng not found (apt-get install espeak-ng)" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox not found (apt-get install sox)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

voice_for() {
    case "$1" in
        es-MX) echo "es-419" ;;
        en) echo "en-us" ;;
        *) echo "unknown language folder: $1" >&2; return 1 ;;
    esac
}

count=0
for langdir in "$dir"/*/; do
    lang="$(basename "$langdir")"
    index="$langdir/index.toml"
    [[ -f "$index" ]] || continue
    voice="$(voice_for "$lang")"
    # Lines look like: name = "words"   (comments and blank lines skipped)
    while IFS= read -r line; do
        [[ "$line" =~ ^([A-Za-z0-9_-]+)[[:space:]]*=[[:space:]]*\"(.*)\"[[:space:]]*$ ]] || continue
        name="${BASH_REMATCH[1]}"
        text="${BASH_REMATCH[2]}"
        out="$langdir/$name.wav"
        if [[ $missing_only == 1 && -f "$out" ]]; then
            continue
        fi
        case "$name" in
            num_* | u_* | say_*) pad=0 ;;
            *) pad=0.3 ;;
        esac
        espeak-ng -v "$voice" -s 150 -p 50 -a 150 -w "$tmp/raw.wav" -- "$text"
        # trim silence at both ends, then resample, normalise and pad
        sox -R -D "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$tmp/out.wav" \
            silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
            gain -n -3 pad 0 "$pad"
        mv "$tmp/out.wav" "$out"
        count=$((count + 1))
    done < "$index"
done
echo "generated $count prompt(s) in $dir"
