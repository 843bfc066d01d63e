package store

import (
	"reflect"
	"testing"
)

func TestStringsRoundTrip(t *testing.T) {
	for _, in := range [][]string{{}, {"a"}, {"ecs.c6", "rds,mysql", `q"uo\te`, "", "NULL", "with space"}} {
		v, err := Strings(in).Value()
		if err != nil {
			t.Fatal(err)
		}
		var out Strings
		if err := out.Scan(v); err != nil {
			t.Fatalf("scan %v: %v", v, err)
		}
		if !reflect.DeepEqual([]string(out), in) {
			t.Fatalf("round trip of %q gave %q (literal %v)", in, out, v)
		}
	}
	var bad Strings
	if err := bad.Scan(`{"open`); err == nil {
		t.Fatal("an unterminated literal scanned")
	}
}

func TestInt64sScan(t *testing.T) {
	var out Int64s
	if err := out.Scan([]byte("{3,-1,42}")); err != nil || !reflect.DeepEqual([]int64(out), []int64{3, -1, 42}) {
		t.Fatalf("got %v, %v", out, err)
	}
	if err := out.Scan(nil); err != nil || out != nil {
		t.Fatalf("NULL gave %v, %v", out, err)
	}
}
