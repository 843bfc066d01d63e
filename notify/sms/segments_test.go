package sms

import (
	"strings"
	"testing"
)

func TestSegments(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	zh := func(n int) string { return strings.Repeat("中", n) }
	tests := []struct {
		name string
		text string
		want int
	}{
		{"empty", "", 0},
		{"ASCII 1", "a", 1},
		{"ASCII 160", a(160), 1},
		{"ASCII 161", a(161), 2},
		{"ASCII 306", a(306), 2},
		{"ASCII 307", a(307), 3},
		{"GSM accents stay 7-bit", strings.Repeat("é", 160), 1},
		{"Chinese 1", "中", 1},
		{"Chinese 70", zh(70), 1},
		{"Chinese 71", zh(71), 2},
		{"Chinese 134", zh(134), 2},
		{"Chinese 135", zh(135), 3},
		{"one Chinese char makes Latin UCS-2", a(69) + "中", 1},
		{"one Chinese char makes Latin UCS-2, 71 units", a(70) + "中", 2},
		{"100 Latin + 1 Chinese", a(100) + "中", 2},
		{"backtick is not GSM", a(70) + "`", 2},
		{"euro counts 2 septets: 80", strings.Repeat("€", 80), 1},
		{"euro counts 2 septets: 81", strings.Repeat("€", 81), 2},
		{"brace counts 2 septets", a(159) + "{", 2},
		{"brace fits at 158+2", a(158) + "{", 1},
		{"escape pair not split across parts", a(152) + "{" + a(152), 3},
		{"escape pair fits a part", a(151) + "{" + a(153), 2},
		{"emoji is UCS-2 and 2 units", a(68) + "😀", 1},
		{"emoji over 70 units", a(69) + "😀", 2},
		{"surrogate pair not split across parts", zh(66) + "😀" + zh(66), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Segments(tt.text); got != tt.want {
				t.Errorf("Segments(%d runes) = %d, want %d", len([]rune(tt.text)), got, tt.want)
			}
		})
	}
}
