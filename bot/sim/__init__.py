"""Local look-alikes of the venues (real protocols on 127.0.0.1): tests, benches, rehearsals."""
