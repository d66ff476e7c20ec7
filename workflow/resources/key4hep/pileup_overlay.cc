// Pile-up overlay for the ttbar_pu10 sample: every output event merges n ~ Poisson(mean) interactions into
// one HepMC3 event; the interactions are taken in a random order in which slot 0 of the permutation is the
// signal (card 1) and the rest are pile-up (card 2, gamma gamma -> hadrons). Interaction i of the merged
// event is shifted in time by i * time_shift. This is the scheme of the MLPF CLIC PU10 production
// (jpata/particleflow scripts/fcc/main19.cc, after Pythia's main19 example); as there, a draw of zero gives
// an empty event, so the mean number of signal interactions per event is 1 - exp(-mean).
//
// Build inside a Key4HEP stack (Pythia8Plugins/HepMC3.h needs the HepMC3 headers and library too):
//   g++ -O2 -std=c++17 pileup_overlay.cc -o pileup_overlay $(pythia8-config --cxxflags)
//       $(HepMC3-config --cxxflags) $(pythia8-config --libs) $(HepMC3-config --libs)
//       -Wl,-rpath,$(HepMC3-config --libdir)
// Run:
//   ./pileup_overlay SIGNAL_CARD PILEUP_CARD SEED MEAN N_EVENTS TIME_SHIFT OUTPUT.hepmc

#include "Pythia8/Pythia.h"
#include "Pythia8Plugins/HepMC3.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

using namespace Pythia8;

// Poisson(mean) by inversion of the cumulative distribution with Pythia's own generator, so one seed fixes
// the whole job. Capped at 1000 slots, far in the tail for every mean the schema allows (<= 100).
int poisson(double mean, Rndm& rndm) {
  const int nMax = 1000;
  const double u = rndm.flat();
  double term = std::exp(-mean);
  double cumulative = term;
  int n = 0;
  while (u > cumulative && n < nMax) {
    ++n;
    term *= mean / n;
    cumulative += term;
  }
  return n;
}

int main(int argc, char* argv[]) {
  if (argc != 8) {
    std::cerr << "usage: pileup_overlay SIGNAL_CARD PILEUP_CARD SEED MEAN N_EVENTS TIME_SHIFT OUTPUT\n";
    return 1;
  }
  const std::string signalCard = argv[1];
  const std::string pileupCard = argv[2];
  const std::string seed = argv[3];
  const double mean = std::atof(argv[4]);
  const int nEvents = std::atoi(argv[5]);
  const double timeShift = std::atof(argv[6]);  // HepMC time units (mm/c)
  const std::string output = argv[7];

  Pythia signal;
  Pythia pileup;
  for (Pythia* p : {&signal, &pileup}) {
    p->readString("Random:setSeed = on");
    p->readString("Random:seed = " + seed);
  }
  if (!signal.readFile(signalCard) || !pileup.readFile(pileupCard)) {
    std::cerr << "pileup_overlay: cannot read the cards\n";
    return 1;
  }
  // The cards carry Random:seed lines of their own; the command-line seed wins.
  signal.readString("Random:seed = " + seed);
  pileup.readString("Random:seed = " + seed);
  if (!signal.init() || !pileup.init()) {
    std::cerr << "pileup_overlay: Pythia initialisation failed\n";
    return 1;
  }

  Pythia8ToHepMC toHepMC(output);
  for (int iEvent = 0; iEvent < nEvents; ++iEvent) {
    HepMC3::GenEvent merged;
    const int nSlots = poisson(mean, pileup.rndm);
    std::vector<int> order(nSlots);
    std::iota(order.begin(), order.end(), 0);
    pileup.rndm.shuffle(order);
    for (int slot = 0; slot < nSlots; ++slot) {
      Pythia& gen = (order[slot] == 0) ? signal : pileup;
      while (!gen.next()) {
      }  // retry failed events, as Main:timesAllowErrors would
      for (int i = 0; i < gen.event.size(); ++i) {
        Particle& p = gen.event[i];
        p.vProd(p.xProd(), p.yProd(), p.zProd(), p.tProd() + slot * timeShift);
      }
      if (!toHepMC.fill_next_event(gen, &merged)) {
        std::cerr << "pileup_overlay: HepMC conversion failed\n";
        return 1;
      }
    }
    toHepMC.output().write_event(merged);
  }
  return 0;
}
