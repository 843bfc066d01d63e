package invoice

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/signintech/gopdf"
)

// fontData is WenQuanYi Micro Hei (Apache 2.0; fonts/README.md says where
// it comes from and how it was cut down): one TrueType face with Latin and
// CJK glyphs, so a Chinese buyer's name and every zh-CN label render. The
// PDF embeds only the glyphs it uses.
//
//go:embed fonts/WenQuanYiMicroHei.ttf
var fontData []byte

// fontFamily is the font's name inside the PDF: the tag before the "+"
// tells readers the font is a subset (ISO 32000-1 §9.6.4).
const fontFamily = "WQYMHI+WenQuanYiMicroHei"

// parsedFont holds the font parsed once for the life of the process;
// parsing its 3.8 MB takes about as long as writing a whole invoice. Each PDF
// takes its own copy and subsets it.
var parsedFont = sync.OnceValues(func() (*gopdf.FontContainer, error) {
	fc := &gopdf.FontContainer{}
	err := fc.AddTTFFontDataWithOption(fontFamily, fontData, gopdf.TtfOption{
		// A character the font lacks (an emoji in a name, say) shows as
		// a visible "?" rather than vanishing into a space.
		OnGlyphNotFoundSubstitute: func(rune) rune { return '?' },
	})
	if err != nil {
		return nil, fmt.Errorf("parse embedded font %s: %w", fontFamily, err)
	}
	return fc, nil
})
