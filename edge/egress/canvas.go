package egress

import (
	"image"
	"image/color"
)

// yuvFrame is a planar YUV 4:2:0 picture (ffmpeg's yuv420p layout: Y, then
// U, then V, no padding), the format decoders hand over and the encoder
// takes. Dimensions are even.
type yuvFrame struct {
	w, h int
	buf  []byte
}

func newYUVFrame(w, h int) *yuvFrame {
	return &yuvFrame{w: w, h: h, buf: make([]byte, yuvSize(w, h))}
}

func yuvSize(w, h int) int { return w*h + 2*(w/2)*(h/2) }

func (f *yuvFrame) planes() (y, u, v []byte) {
	ys := f.w * f.h
	cs := (f.w / 2) * (f.h / 2)
	return f.buf[:ys], f.buf[ys : ys+cs], f.buf[ys+cs : ys+2*cs]
}

// yuvColor is a colour in the encoder's space (BT.601).
type yuvColor struct{ y, u, v uint8 }

func rgb(r, g, b uint8) yuvColor {
	y, u, v := color.RGBToYCbCr(r, g, b)
	return yuvColor{y, u, v}
}

// even rounds down to an even number (4:2:0 chroma needs even edges).
func even(n int) int { return n &^ 1 }

// fill paints rect (clipped, even-aligned) with c.
func (f *yuvFrame) fill(r image.Rectangle, c yuvColor) {
	r = evenRect(r).Intersect(image.Rect(0, 0, f.w, f.h))
	if r.Empty() {
		return
	}
	y, u, v := f.planes()
	for row := r.Min.Y; row < r.Max.Y; row++ {
		fillBytes(y[row*f.w+r.Min.X:row*f.w+r.Max.X], c.y)
	}
	cw := f.w / 2
	for row := r.Min.Y / 2; row < r.Max.Y/2; row++ {
		fillBytes(u[row*cw+r.Min.X/2:row*cw+r.Max.X/2], c.u)
		fillBytes(v[row*cw+r.Min.X/2:row*cw+r.Max.X/2], c.v)
	}
}

func fillBytes(b []byte, v byte) {
	if len(b) == 0 {
		return
	}
	b[0] = v
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

func evenRect(r image.Rectangle) image.Rectangle {
	return image.Rect(even(r.Min.X), even(r.Min.Y), even(r.Max.X), even(r.Max.Y))
}

// fitRect is the largest rectangle of aspect sw:sh centred in r (letterbox).
func fitRect(r image.Rectangle, sw, sh int) image.Rectangle {
	if sw <= 0 || sh <= 0 {
		return r
	}
	w, h := r.Dx(), r.Dy()
	if w*sh > h*sw { // r is wider: full height
		nw := even(h * sw / sh)
		x := even(r.Min.X + (w-nw)/2)
		return image.Rect(x, r.Min.Y, x+nw, r.Max.Y)
	}
	nh := even(w * sh / sw)
	y := even(r.Min.Y + (h-nh)/2)
	return image.Rect(r.Min.X, y, r.Max.X, y+nh)
}

// blit draws src scaled into dst rect r (even-aligned, inside the frame).
func (f *yuvFrame) blit(r image.Rectangle, src *yuvFrame) {
	r = evenRect(r).Intersect(image.Rect(0, 0, f.w, f.h))
	if r.Empty() || src == nil || src.w == 0 || src.h == 0 {
		return
	}
	dy, du, dv := f.planes()
	sy, su, sv := src.planes()
	scalePlane(dy, f.w, r.Min.X, r.Min.Y, r.Dx(), r.Dy(), sy, src.w, src.w, src.h)
	cw, scw := f.w/2, src.w/2
	scalePlane(du, cw, r.Min.X/2, r.Min.Y/2, r.Dx()/2, r.Dy()/2, su, scw, scw, src.h/2)
	scalePlane(dv, cw, r.Min.X/2, r.Min.Y/2, r.Dx()/2, r.Dy()/2, sv, scw, scw, src.h/2)
}

// scalePlane resamples one plane: a copy when sizes match, a 2×2 box
// average for an exact halving (the common grid case: 720p sources in
// 640×360 tiles), bilinear otherwise. Fixed point, no allocation.
func scalePlane(dst []byte, dstStride, dx, dy, dw, dh int, src []byte, srcStride, sw, sh int) {
	if dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0 {
		return
	}
	if dw == sw && dh == sh {
		for row := 0; row < dh; row++ {
			copy(dst[(dy+row)*dstStride+dx:(dy+row)*dstStride+dx+dw], src[row*srcStride:row*srcStride+sw])
		}
		return
	}
	if dw*2 == sw && dh*2 == sh {
		for row := 0; row < dh; row++ {
			s0 := src[2*row*srcStride : 2*row*srcStride+sw]
			s1 := src[(2*row+1)*srcStride : (2*row+1)*srcStride+sw]
			d := dst[(dy+row)*dstStride+dx : (dy+row)*dstStride+dx+dw]
			for x := range d {
				d[x] = byte((int(s0[2*x]) + int(s0[2*x+1]) + int(s1[2*x]) + int(s1[2*x+1]) + 2) >> 2)
			}
		}
		return
	}
	// Bilinear, 16.16 fixed point, sampling at pixel centres.
	xStep := (sw << 16) / dw
	yStep := (sh << 16) / dh
	for row := 0; row < dh; row++ {
		fy := (row*yStep + yStep/2) - 1<<15
		if fy < 0 {
			fy = 0
		}
		y0 := fy >> 16
		y1 := y0 + 1
		if y1 >= sh {
			y1 = sh - 1
		}
		wy := (fy >> 8) & 0xff
		r0 := src[y0*srcStride : y0*srcStride+sw]
		r1 := src[y1*srcStride : y1*srcStride+sw]
		d := dst[(dy+row)*dstStride+dx : (dy+row)*dstStride+dx+dw]
		fx := xStep/2 - 1<<15
		for x := range d {
			cx := fx
			if cx < 0 {
				cx = 0
			}
			x0 := cx >> 16
			x1 := x0 + 1
			if x1 >= sw {
				x1 = sw - 1
			}
			wx := (cx >> 8) & 0xff
			top := int(r0[x0])*(256-wx) + int(r0[x1])*wx
			bot := int(r1[x0])*(256-wx) + int(r1[x1])*wx
			d[x] = byte((top*(256-wy) + bot*wy + 1<<15) >> 16)
			fx += xStep
		}
	}
}

// image returns the frame as an image.YCbCr sharing the buffer.
func (f *yuvFrame) image() *image.YCbCr {
	y, u, v := f.planes()
	return &image.YCbCr{Y: y, Cb: u, Cr: v, YStride: f.w, CStride: f.w / 2,
		SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, f.w, f.h)}
}

// clone copies the frame.
func (f *yuvFrame) clone() *yuvFrame {
	return &yuvFrame{w: f.w, h: f.h, buf: append([]byte(nil), f.buf...)}
}
