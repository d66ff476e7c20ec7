! e+e- -> gamma*/Z -> tau tau at 380 GeV (sample z_tautau)
! The settings of the published 380 GeV card, HEP-KBFI/key4hep-sim v1.2.2 clic/p8_ee_Z_Ztautau_ecm380.cmd
! (also in trahxam/key4hep-sim, commit 4e458652); only the printout settings differ, which change no event.
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

! s-channel gamma*/Z, decaying to tau pairs only
WeakSingleBoson:ffbar2gmZ = on
23:onMode = off
23:onIfAny = 15
