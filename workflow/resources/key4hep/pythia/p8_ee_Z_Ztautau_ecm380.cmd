! e+e- -> gamma*/Z -> tau tau at 380 GeV (sample z_tautau)
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

! The settings of the production's p8_ee_Z_Ztautau_ecm125 card at 380 GeV: no 380 GeV card was published
! (the z_tautau builder of MLPF v1.9 reads a p8_ee_Z_Ztautau_ecm380 card).
PDF:lepton = on
WeakSingleBoson:ffbar2ffbar(s:gmZ) = on
23:onMode = off
23:onIfAny = 15
