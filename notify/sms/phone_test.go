package sms

import "testing"

func TestValidPhone(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"+8613800138000", true},
		{"+14155550100", true},
		{"+85212345678", true},
		{"+12345678", true},          // 8 digits
		{"+123456789012345", true},   // 15 digits
		{"+1234567", false},          // 7 digits
		{"+1234567890123456", false}, // 16 digits
		{"+0123456789", false},
		{"8613800138000", false},
		{"++8613800138000", false},
		{"+86 138 0013 8000", false},
		{"+86-13800138000", false},
		{"+８６13800138000", false}, // full-width digits
		{"", false},
		{"+", false},
	}
	for _, tt := range tests {
		if got := ValidPhone(tt.in); got != tt.want {
			t.Errorf("ValidPhone(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestMaskPhone_HidesAtLeastFourDigits(t *testing.T) {
	tests := map[string]string{
		"+8613800138000":   "+86138****8000",
		"+14155550100":     "+141****0100",
		"+12345678":        "+****5678",
		"+123456789012345": "+12345******2345",
		"not a number":     "(invalid)",
	}
	for in, want := range tests {
		if got := maskPhone(in); got != want {
			t.Errorf("maskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAliyunPhone(t *testing.T) {
	tests := map[string]string{
		"+8613800138000": "13800138000",
		"+14155550100":   "14155550100",
		"+85291234567":   "85291234567",
	}
	for in, want := range tests {
		if got := aliyunPhone(in); got != want {
			t.Errorf("aliyunPhone(%q) = %q, want %q", in, got, want)
		}
	}
}
