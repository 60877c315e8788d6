package codecs_test

import (
	"fmt"

	"github.com/baton-voice/baton/codecs"
)

// Example_registry builds a registry in this side's preference order and
// answers an offer: the answer keeps the offerer's preference (RFC 3264
// §6.1), so PCMU is chosen even though this side prefers PCMA.
func Example_registry() {
	reg, err := codecs.NewRegistry(codecs.PCMA(), codecs.PCMU())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ours:", reg.Names())

	c, err := reg.Negotiate([]string{"opus", "PCMU", "PCMA"})
	if err != nil {
		fmt.Println(err)
		return
	}
	d := c.Descriptor()
	fmt.Printf("answer: %s/%d pt %d\n", d.Name, d.ClockRate, d.PayloadType)

	_, err = reg.Negotiate([]string{"opus", "G722"})
	fmt.Println(err)

	// Output:
	// ours: [PCMA PCMU]
	// answer: PCMU/8000 pt 0
	// codecs: negotiate: none of offered [opus G722] is supported (have [PCMA PCMU]): unknown codec
}
