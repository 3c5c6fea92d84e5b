package service

import "github.com/sailmaker/sailmaker/publish"

// outputs are where the service's builds go: the registry, and with an apt
// signing key (signing.aptKey) the service's apt repository
// (packages.aptDir, default <state-dir>/apt), which `sailmaker serve`
// serves under /apt/.
func (s *Service) outputs() []publish.Output {
	outs := []publish.Output{{Kind: publish.OutputRegistry}}
	if s.aptSigner != nil {
		outs = append(outs, publish.Output{Kind: publish.OutputApt, Path: s.cfg.AptRepoDir()})
	}
	return outs
}
