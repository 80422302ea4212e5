package vpx

import (
	"bytes"
	"fmt"
	"image"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/media/video"
)

// naturalFilter is an ffmpeg lavfi graph for a deterministic clip that looks
// like a webcam call without downloading anything: a textured wall (static
// noise at two scales: fine grain and large blotches, tinted), a door frame,
// a shelf and a poster with fine detail (a frozen Mandelbrot crop), and a
// person (a textured face with eyes and mouth on a blue body) swaying from
// side to side and bobbing; on top, a slow brightness change (auto
// exposure) and temporal sensor noise. Every random source has a fixed seed,
// so the same ffmpeg makes the same clip. It suits the comparison with JPEG
// because it has what a webcam has and what separates the codecs: most of
// the picture still from frame to frame (which VP8 exploits and per-frame
// JPEG cannot), detail everywhere (which costs JPEG in every frame and VP8
// mainly once), real motion and noise that changes in every frame (which
// VP8 must pay for too).
func naturalFilter(w, h int) string {
	x := "(W-w)/2+60*sin(t*1.3)"
	return strings.Join([]string{
		fmt.Sprintf("color=c=gray:s=%dx%d:r=30,noise=alls=100:allf=u:all_seed=11,gblur=sigma=1.2,eq=contrast=1.5[t1]", w, h),
		fmt.Sprintf("color=c=gray:s=%dx%d:r=30,noise=alls=100:allf=u:all_seed=12,gblur=sigma=12,eq=contrast=8[t2]", w, h),
		"[t1][t2]blend=all_mode=average,format=gbrp,lutrgb=r='val*0.95+10':g='val*0.8+10':b='val*0.6+30'," +
			"drawbox=x=iw*0.72:y=0:w=iw*0.03:h=ih:color=0x3a2a1a:t=fill,drawbox=x=0:y=ih*0.45:w=iw*0.3:h=ih*0.025:color=0xe0d8c8:t=fill[bg0]",
		"mandelbrot=s=120x90:rate=30:start_scale=0.8:end_scale=0.8:start_x=-0.75:start_y=0.1,gblur=sigma=0.7[poster]",
		"[bg0][poster]overlay=x=W*0.06:y=H*0.08[bg]",
		"color=c=0x2850a0:s=270x130:r=30,noise=alls=40:allf=u:all_seed=15,format=rgba," +
			"geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='255*clip((1-hypot((X-135)/135,(Y-130)/130))*10,0,1)'[body]",
		"color=c=0xc08060:s=140x180:r=30,noise=alls=40:allf=u:all_seed=13,gblur=sigma=2," +
			"drawbox=x=38:y=70:w=18:h=8:color=0x302020:t=fill,drawbox=x=84:y=70:w=18:h=8:color=0x302020:t=fill," +
			"drawbox=x=55:y=130:w=30:h=6:color=0x803030:t=fill,format=rgba," +
			"geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='255*clip((1-hypot((X-70)/70,(Y-90)/90))*10,0,1)'[face]",
		"[bg][body]overlay=x='" + x + "':y='H-h'[a]",
		"[a][face]overlay=x='" + x + "':y='H-h-110+10*sin(t*0.7)',eq=brightness='0.03*sin(t*2)':eval=frame," +
			"noise=alls=4:allf=t:all_seed=14,format=yuv420p",
	}, ";")
}

var (
	clipMu    sync.Mutex
	clipCache = map[string]clip{}
)

type clip struct {
	pics []*image.YCbCr
	y4m  []byte
}

// naturalClip returns frames pictures of the natural clip at w×h (made
// once per process with ffmpeg), and its Y4M encoding.
func naturalClip(t testing.TB, w, h, frames int) ([]*image.YCbCr, []byte) {
	t.Helper()
	clipMu.Lock()
	defer clipMu.Unlock()
	key := fmt.Sprint(w, h, frames)
	if c, ok := clipCache[key]; ok {
		return c.pics, c.y4m
	}
	data := tool(t, "ffmpeg", "-nostdin", "-f", "lavfi", "-i", naturalFilter(w, h), "-frames:v", fmt.Sprint(frames), "-f", "yuv4mpegpipe", "-")
	r, err := video.NewY4MReader(bytes.NewReader(data), video.Y4MOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pics []*image.YCbCr
	for {
		img, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pics = append(pics, video.ToI420(nil, img))
	}
	if len(pics) != frames {
		t.Fatalf("ffmpeg made %d frames, want %d", len(pics), frames)
	}
	clipCache[key] = clip{pics, data}
	return pics, data
}
