// Package sipbridge will be the SIP side of the gateway on emiago/sipgo:
// registrar, B2BUA dialogs, SDP, trunks, dialog-info, Replaces and REFER
// (../shared/DESIGN.md §2 and §3).
//
// Not implemented yet: no SIP is spoken by this build.
package sipbridge
