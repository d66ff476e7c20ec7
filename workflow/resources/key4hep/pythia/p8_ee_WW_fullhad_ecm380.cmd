! e+e- -> W+W-, both W -> hadrons, at 380 GeV (sample ww_fullhad)
! MLPF CLIC production card (jpata/particleflow scripts/fcc/, Key4hep k4run pythia.py).
! The job appends Random:seed=<seed>; k4run -n sets the number of events.
Random:setSeed = on
Main:numberOfEvents = 100          ! events per job (overridden by k4run -n)
Main:timesAllowErrors = 5          ! aborts tolerated before the run stops

Init:showChangedSettings = on      ! list changed settings in the job log
Init:showChangedParticleData = off
Next:numberCount = 100             ! progress message every 100 events
Next:numberShowInfo = 1
Next:numberShowProcess = 1
Next:numberShowEvent = 0

Beams:idA = 11                     ! e-
Beams:idB = -11                    ! e+
Beams:eCM = 380                    ! GeV, CLIC first energy stage

PartonLevel:ISR = on
PartonLevel:FSR = on

WeakDoubleBoson:ffbar2WW = on
24:onMode = off
24:onIfAny = 1 2 3 4 5 6
