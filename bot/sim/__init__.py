"""Local look-alikes on 127.0.0.1 (real protocols): the venues (localexchange), the pagers
(paging) and the other bots of a desk (bridges), for tests, benches and rehearsals."""
