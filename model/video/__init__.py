"""Video frame streams in and out, through PyAV (whose wheels bundle FFmpeg).

Reading (:class:`VideoReader`) yields one float32 RGB frame at a time, upright: the display
matrix (or an old ``rotate`` tag) is applied, so a phone clip shot in portrait comes out in
portrait. Everything that can be refused is refused when the reader is opened, before any
output exists: a file that is not a video, an audio-only file, a codec this FFmpeg cannot
decode, a frame size over ``max_pixels`` (read from the header, before decoding) and a clip
with no frames (the first frame is decoded up front).

Writing (:class:`VideoWriter`) picks the format from the output path:

===========  ===========================================================================
``.mov``     ProRes 4444 with alpha (prores_ks, yuva444p10le)
``.webm``    VP9 with alpha (libvpx-vp9, yuva420p)
``.mp4``     H.264 (libx264, yuv420p) of the foreground composited over a background
a folder     an RGBA PNG sequence, ``frame_000000.png``, ``frame_000001.png``, ...
===========  ===========================================================================

It keeps the frame rate as an exact fraction, writes one output frame per input frame and
copies the source's audio: packets are remuxed when the container can hold the codec, and
transcoded (AAC, or Opus for WebM) otherwise. Nothing appears at the output path until the
writer closes successfully; an exception or Ctrl-C inside its ``with`` block removes the temp
file (or folder).

Memory stays bounded whatever the clip's length: one decoded frame, one frame being encoded
and the encoders' own look-ahead buffers. Audio is read from a second handle on the source
file in step with the video, so it is never held whole either.

Colour: frames are written as BT.709 limited range and tagged so; reading converts with the
matrix and range the stream is tagged with.
"""

from model.video.reader import (
    MAX_VIDEO_PIXELS,
    VIDEO_SUFFIXES,
    VideoError,
    VideoInfo,
    VideoReader,
    is_video_path,
    probe_video,
)
from model.video.writer import OUTPUT_KINDS, VideoWriter, output_kind

__all__ = [
    "MAX_VIDEO_PIXELS",
    "OUTPUT_KINDS",
    "VIDEO_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "is_video_path",
    "output_kind",
    "probe_video",
]
