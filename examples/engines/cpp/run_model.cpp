// Load an exported metatomic model (e.g. pet_mta's model.pt) through the C++ API
// that LAMMPS uses, compute the neighbour lists it requests for a periodic system
// ourselves, and print the energy (eV) and forces (eV/Å).
//
// usage: run_model model.pt system.txt
// system.txt: number of atoms; three lines with the cell vectors a, b, c (Å);
// then one line per atom: atomic number, x, y, z (Å). Periodic in all directions.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/script.h>
#include <metatensor/torch.hpp>
#include <metatomic/torch.hpp>

namespace mta = metatomic_torch;
namespace mts = metatensor_torch;

struct Structure {
    std::vector<int32_t> types;
    std::vector<double> positions;  // n_atoms x 3
    double cell[3][3];              // rows are the cell vectors
};

static Structure read_structure(const std::string& path) {
    std::ifstream file(path);
    if (!file) {
        throw std::runtime_error("can not open " + path);
    }
    Structure structure;
    size_t n_atoms = 0;
    file >> n_atoms;
    for (auto& row: structure.cell) {
        file >> row[0] >> row[1] >> row[2];
    }
    for (size_t i = 0; i < n_atoms; i++) {
        int32_t type = 0;
        double x = 0, y = 0, z = 0;
        file >> type >> x >> y >> z;
        structure.types.push_back(type);
        structure.positions.insert(structure.positions.end(), {x, y, z});
    }
    if (!file) {
        throw std::runtime_error("could not read " + path);
    }
    return structure;
}

static double norm(const double v[3]) {
    return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
}

static void cross(const double a[3], const double b[3], double out[3]) {
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

/// Full, strict neighbour list with periodic images, by brute force over the
/// cell shifts that can hold a neighbour: O(N^2 x images), fine for a few
/// hundred atoms. The block has the layout metatomic expects: samples
/// (first_atom, second_atom, cell_shift_a/b/c), one `xyz` component, one
/// `distance` property; values are r_j - r_i + shift . cell.
static mts::TensorBlock neighbor_list(const Structure& s, double cutoff, torch::Dtype dtype) {
    const auto& c = s.cell;
    double volume_vector[3];
    cross(c[1], c[2], volume_vector);
    double volume = std::abs(c[0][0] * volume_vector[0] + c[0][1] * volume_vector[1] + c[0][2] * volume_vector[2]);
    int n_shifts[3];
    for (int k = 0; k < 3; k++) {
        double normal[3];
        cross(c[(k + 1) % 3], c[(k + 2) % 3], normal);
        double plane_distance = volume / norm(normal);
        n_shifts[k] = static_cast<int>(std::ceil(cutoff / plane_distance));
    }

    auto n_atoms = static_cast<int64_t>(s.types.size());
    std::vector<int32_t> samples;
    std::vector<double> vectors;
    for (int64_t i = 0; i < n_atoms; i++) {
        for (int64_t j = 0; j < n_atoms; j++) {
            for (int a = -n_shifts[0]; a <= n_shifts[0]; a++) {
                for (int b = -n_shifts[1]; b <= n_shifts[1]; b++) {
                    for (int d = -n_shifts[2]; d <= n_shifts[2]; d++) {
                        if (i == j && a == 0 && b == 0 && d == 0) {
                            continue;
                        }
                        double v[3];
                        for (int x = 0; x < 3; x++) {
                            v[x] = s.positions[3 * j + x] - s.positions[3 * i + x] + a * c[0][x] + b * c[1][x] + d * c[2][x];
                        }
                        if (norm(v) < cutoff) {
                            samples.insert(samples.end(), {static_cast<int32_t>(i), static_cast<int32_t>(j), a, b, d});
                            vectors.insert(vectors.end(), {v[0], v[1], v[2]});
                        }
                    }
                }
            }
        }
    }
    auto n_pairs = static_cast<int64_t>(vectors.size() / 3);
    auto sample_values = torch::tensor(samples, torch::kInt32).reshape({n_pairs, 5});
    auto values = torch::tensor(vectors, torch::kFloat64).reshape({n_pairs, 3, 1}).to(dtype);
    auto sample_labels = torch::make_intrusive<mts::LabelsHolder>(
        std::vector<std::string>{"first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"},
        sample_values
    );
    auto xyz = torch::make_intrusive<mts::LabelsHolder>(
        std::vector<std::string>{"xyz"}, torch::tensor({0, 1, 2}, torch::kInt32).reshape({3, 1})
    );
    auto distance = torch::make_intrusive<mts::LabelsHolder>(
        std::vector<std::string>{"distance"}, torch::zeros({1, 1}, torch::kInt32)
    );
    return torch::make_intrusive<mts::TensorBlockHolder>(
        values, sample_labels, std::vector<mts::Labels>{xyz}, distance
    );
}

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " model.pt system.txt" << std::endl;
        return 1;
    }
    torch::set_num_threads(1);
    auto model = mta::load_atomistic_model(argv[1]);
    auto capabilities = model.run_method("capabilities").toCustomClass<mta::ModelCapabilitiesHolder>();
    auto dtype = capabilities->dtype() == "float32" ? torch::kFloat32 : torch::kFloat64;
    std::cerr << "model dtype " << capabilities->dtype() << ", interaction range "
              << capabilities->engine_interaction_range("angstrom") << " A" << std::endl;

    auto structure = read_structure(argv[2]);
    auto n_atoms = static_cast<int64_t>(structure.types.size());
    auto types = torch::tensor(structure.types, torch::kInt32);
    auto positions = torch::tensor(structure.positions, torch::kFloat64).reshape({n_atoms, 3}).to(dtype);
    positions.requires_grad_(true);
    std::vector<double> cell_values;
    for (auto& row: structure.cell) {
        cell_values.insert(cell_values.end(), {row[0], row[1], row[2]});
    }
    auto cell = torch::tensor(cell_values, torch::kFloat64).reshape({3, 3}).to(dtype);
    auto pbc = torch::ones({3}, torch::kBool);
    auto system = torch::make_intrusive<mta::SystemHolder>(types, positions, cell, pbc);

    // every neighbour list the model asks for, computed here and registered with
    // autograd so that forces flow from the distance vectors to the positions
    auto requests = model.run_method("requested_neighbor_lists").toList();
    for (const auto& request: requests) {
        auto options = request.get().toCustomClass<mta::NeighborListOptionsHolder>();
        if (!options->full_list()) {
            throw std::runtime_error("this example only builds full neighbour lists");
        }
        auto neighbors = neighbor_list(structure, options->engine_cutoff("angstrom"), dtype);
        mta::register_autograd_neighbors(system, neighbors, /*check_consistency=*/true);
        system->add_neighbor_list(options, neighbors);
    }

    auto outputs = torch::Dict<std::string, mta::ModelOutput>();
    outputs.insert("energy", torch::make_intrusive<mta::ModelOutputHolder>(
        /*quantity=*/"", "eV", "system", std::vector<std::string>{}, ""
    ));
    auto evaluation_options = torch::make_intrusive<mta::ModelEvaluationOptionsHolder>(
        "angstrom", outputs, torch::nullopt
    );
    auto systems = torch::List<mta::System>();
    systems.push_back(system);

    auto result = model.forward({systems, evaluation_options, /*check_consistency=*/true});
    auto energy_map = result.toGenericDict().at("energy").toCustomClass<mts::TensorMapHolder>();
    auto energy = mts::TensorMapHolder::block_by_id(energy_map, 0)->values().sum();
    energy.backward();
    auto forces = -positions.grad().to(torch::kFloat64);

    std::printf("energy %.17g\n", energy.item<double>());
    for (int64_t i = 0; i < n_atoms; i++) {
        std::printf("%.17g %.17g %.17g\n", forces[i][0].item<double>(), forces[i][1].item<double>(), forces[i][2].item<double>());
    }
    return 0;
}
