! e+e- -> ZH, H -> tau tau, at 380 GeV (sample zh_tautau)
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

HiggsSM:ffbar2HZ = on
25:m0 = 125                        ! GeV
25:onMode = off
25:onIfAny = 15
