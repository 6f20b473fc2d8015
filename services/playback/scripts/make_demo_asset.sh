#!/usr/bin/env bash
# Regenerate the tiny demo HLS asset committed under services/playback/media/.
# ~6 s of test pattern + tone, 320x180, low bitrate, 2 s segments, one "360p" rendition.
# Usage: services/playback/scripts/make_demo_asset.sh [asset_id]
set -euo pipefail

ASSET_ID="${1:-20000000-0000-4000-8000-000000000001}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${HERE}/../media/${ASSET_ID}"
RENDITION="360p"
WIDTH=320
HEIGHT=180
VIDEO_KBPS=96
AUDIO_KBPS=32

rm -rf "${OUT}"
mkdir -p "${OUT}/${RENDITION}"

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc=size=${WIDTH}x${HEIGHT}:rate=15:duration=6" \
  -f lavfi -i "sine=frequency=440:sample_rate=22050:duration=6" \
  -c:v libx264 -profile:v baseline -level 3.0 -pix_fmt yuv420p -preset veryfast \
  -b:v "${VIDEO_KBPS}k" -maxrate "${VIDEO_KBPS}k" -bufsize "$((VIDEO_KBPS * 2))k" \
  -g 30 -keyint_min 30 -sc_threshold 0 \
  -c:a aac -b:a "${AUDIO_KBPS}k" -ac 1 \
  -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_list_size 0 \
  -hls_segment_filename "${OUT}/${RENDITION}/segment_%03d.ts" \
  "${OUT}/${RENDITION}/index.m3u8"

BANDWIDTH=$(((VIDEO_KBPS + AUDIO_KBPS) * 1000 * 12 / 10))
cat > "${OUT}/master.m3u8" <<M3U8
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=${BANDWIDTH},RESOLUTION=${WIDTH}x${HEIGHT},CODECS="avc1.42e01e,mp4a.40.2"
${RENDITION}/index.m3u8
M3U8

du -sh "${OUT}"
