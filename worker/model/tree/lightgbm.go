package tree

import (
	"errors"
	"io"
)

// LoadLightGBM reads a LightGBM text model (model.txt, version=v3 or v4).
func LoadLightGBM(r io.Reader) (*Model, error) {
	return nil, errors.New("LightGBM text models are not supported yet")
}
