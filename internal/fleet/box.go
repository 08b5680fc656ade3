// Package fleet holds the inventory of boxes (fleet.yaml): model, firmware,
// site, who owns each box and whom to escalate to.
package fleet

// Box is one storage array of the inventory.
type Box struct {
	ID         string   `yaml:"id" json:"id"`
	Model      string   `yaml:"model" json:"model"`
	Firmware   string   `yaml:"firmware" json:"firmware"`
	Site       string   `yaml:"site" json:"site"`
	Owners     []string `yaml:"owners,omitempty" json:"owners,omitempty"`
	Escalation []string `yaml:"escalation,omitempty" json:"escalation,omitempty"`
	Tags       []string `yaml:"tags,omitempty" json:"tags,omitempty"`
}
