package vpx

import "github.com/parleychat/parley/media"

var (
	_ media.VideoEncoder = (*Encoder)(nil)
	_ media.VideoDecoder = (*Decoder)(nil)
)
